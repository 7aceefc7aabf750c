/**
 * coturn's connection strings (src/userdb/connection.ts): libpq's key=value list and URI for
 * --psql-userdb, coturn's own key=value list with its spellings for --mysql-userdb; mistakes are one
 * clear start-up line; passwords never reach a log line.
 */
import { describe, expect, test } from "bun:test";
import { ConfigError, resolveConfig } from "../../src/config/resolve.ts";
import { parseArgv } from "../../src/cli/argv.ts";
import { parseTurnserverConf } from "../../src/config/turnserver-conf.ts";
import { sanitized, sqlOptions } from "../../src/userdb/connection.ts";

function refusal(argv: string[]): string {
  try {
    resolveConfig(parseArgv(argv).raw);
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  return "accepted";
}

describe("--psql-userdb", () => {
  test("libpq's key=value list, quoted values, a Unix socket directory, and the URI form", () => {
    expect(sqlOptions({ kind: "postgres", connection: "host=db.example dbname=coturn user=turn password='a b\\'c' connect_timeout=7" }))
      .toEqual({ adapter: "postgres", hostname: "db.example", port: 5432, database: "coturn", username: "turn", password: "a b'c", connectionTimeout: 7 });
    expect(sqlOptions({ kind: "postgres", connection: "host=/run/postgresql port=5433 dbname=coturn" }))
      .toEqual({ adapter: "postgres", path: "/run/postgresql/.s.PGSQL.5433", port: 5433, database: "coturn" });
    expect(sqlOptions({ kind: "postgres", connection: "postgresql://turn:pw@db:5432/coturn" })).toEqual({ adapter: "postgres", url: "postgresql://turn:pw@db:5432/coturn" });
    expect(sqlOptions({ kind: "postgres", connection: "host=db sslmode=require" }).tls).toEqual({ rejectUnauthorized: false });
  });

  test("mistakes are one line at start", () => {
    expect(refusal(["-e", "host=db colour=blue"])).toStartWith("--psql-userdb: 'colour' is not a connection setting");
    expect(refusal(["-e", "host=db sslmode=sometimes"])).toContain("sslmode: expected disable");
    expect(refusal(["-e", "host=db port=x"])).toContain("port: expected a whole number");
    expect(refusal(["-e", "host=db", "-b", "/tmp/x.db"])).toBe("--userdb and --psql-userdb: give one user database");
    expect(refusal(["-e", "host=db", "-M", "host=db dbname=x"])).toBe("--psql-userdb and --mysql-userdb: give one user database");
    expect(refusal(["--use-auth-secret", "-e", "host=db"])).toBe("accepted"); // the secrets come from turn_secret
  });
});

describe("--mysql-userdb", () => {
  test("coturn's spellings; host 127.0.0.1 and port 3306 by default; read_timeout accepted", () => {
    expect(sqlOptions({ kind: "mysql", connection: "ip=10.0.0.2 db=coturn uname=turn pwd=pw p=3307 timeout=3 read_timeout=10" }))
      .toEqual({ adapter: "mysql", hostname: "10.0.0.2", port: 3307, database: "coturn", username: "turn", password: "pw", connectionTimeout: 3 });
    expect(sqlOptions({ kind: "mysql", connection: "dbname=coturn" })).toMatchObject({ hostname: "127.0.0.1", port: 3306, username: "", password: "" });
  });

  test("coturn's docker file's line is taken as it is", () => {
    const conf = 'mysql-userdb="host=mysql dbname=coturn user=coturn password=CHANGE_ME port=3306 connect_timeout=10 read_timeout=10"\n';
    expect(resolveConfig(parseTurnserverConf(conf)).auth).toMatchObject({ networkUserdb: { kind: "mysql", connection: "host=mysql dbname=coturn user=coturn password=CHANGE_ME port=3306 connect_timeout=10 read_timeout=10" } });
  });

  test("mistakes are one line at start", () => {
    expect(refusal(["-M", "host=db"])).toBe("--mysql-userdb: dbname=... is missing (the database that holds turnusers_lt)");
    expect(refusal(["-M", "host=db dbname=x colour=blue"])).toStartWith("--mysql-userdb: 'colour' is not one of coturn's MySQL connection settings");
    expect(refusal(["-M", "dbname=x ca=/nonexistent/ca.pem"])).toContain("ca: cannot read /nonexistent/ca.pem: ENOENT");
  });
});

test("passwords are hidden in what is logged", () => {
  expect(sanitized({ kind: "postgres", connection: "host=db password='se cret' user=u" })).toBe("host=db password=*** user=u");
  expect(sanitized({ kind: "postgres", connection: "postgresql://turn:se@cret@db/coturn" })).toBe("postgresql://turn:***@db/coturn");
  expect(sanitized({ kind: "mysql", connection: "host=db pwd=x secret=y" })).toBe("host=db pwd=*** secret=***");
});
