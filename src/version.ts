/** bunturn's version, for --version, the start-up line and bunturn_build_info. */
export const VERSION = "0.1.0";
