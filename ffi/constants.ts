/** Linux x86_64 constants (values from the kernel's uapi headers and glibc). */

export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;

export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_ERROR = 4;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_REUSEPORT = 15;
export const SO_RXQ_OVFL = 40;

export const IPPROTO_IP = 0;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
/** Level of the UDP socket options and control messages (the same number as IPPROTO_UDP). */
export const SOL_UDP = 17;
/** UDP generic segmentation offload: a u16 segment size, as socket option or per-send control message. */
export const UDP_SEGMENT = 103;
/** UDP generic receive offload: coalesced receives, each with an int gso_size control message. */
export const UDP_GRO = 104;
/** The kernel's UDP_MAX_SEGMENTS: segments one GSO send may carry. */
export const UDP_MAX_SEGMENTS = 64;
export const TCP_NODELAY = 1;
export const IPPROTO_IPV6 = 41;

export const IP_TOS = 1;
export const IP_TTL = 2;
export const IP_MTU_DISCOVER = 10;
export const IP_RECVERR = 11;
export const IP_RECVTTL = 12;
export const IP_RECVTOS = 13;
export const IP_PMTUDISC_DONT = 0;
export const IP_PMTUDISC_DO = 2;

export const IPV6_UNICAST_HOPS = 16;
export const IPV6_MTU_DISCOVER = 23;
export const IPV6_RECVERR = 25;
export const IPV6_V6ONLY = 26;
export const IPV6_RECVHOPLIMIT = 51;
export const IPV6_HOPLIMIT = 52;
export const IPV6_RECVTCLASS = 66;
export const IPV6_TCLASS = 67;
export const IPV6_PMTUDISC_DONT = 0;
export const IPV6_PMTUDISC_DO = 2;

export const MSG_CTRUNC = 0x8;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_ERRQUEUE = 0x2000;

/** sock_extended_err.ee_origin */
export const SO_EE_ORIGIN_LOCAL = 1;
export const SO_EE_ORIGIN_ICMP = 2;
export const SO_EE_ORIGIN_ICMP6 = 3;

export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLL_CLOEXEC = 0o2000000;

export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
