/** RFC 8489 §5: the fixed value in bytes 4..7 of every STUN message. */
export const MAGIC_COOKIE = 0x2112a442;
export const HEADER_LENGTH = 20;
export const TRANSACTION_ID_LENGTH = 12;

/** Message classes (RFC 8489 §5), as the two-bit value C1C0. */
export const StunClass = {
  Request: 0,
  Indication: 1,
  SuccessResponse: 2,
  ErrorResponse: 3,
} as const;
export type StunClass = (typeof StunClass)[keyof typeof StunClass];

/** Methods: RFC 8489 §18.2 (Binding) and RFC 8656 §17 (TURN). */
export const StunMethod = {
  Binding: 0x001,
  Allocate: 0x003,
  Refresh: 0x004,
  Send: 0x006,
  Data: 0x007,
  CreatePermission: 0x008,
  ChannelBind: 0x009,
  /** RFC 6062 §6.1: TCP relays. */
  Connect: 0x00a,
  ConnectionBind: 0x00b,
  ConnectionAttempt: 0x00c,
} as const;

/** Attribute types: RFC 8489 §18.3, RFC 8656 §18, RFC 8445 §16.1 (ICE ones we tolerate), RFC 5780 §9.1. */
export const Attr = {
  MappedAddress: 0x0001,
  ChangeRequest: 0x0003,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  ChannelNumber: 0x000c,
  Lifetime: 0x000d,
  XorPeerAddress: 0x0012,
  Data: 0x0013,
  Realm: 0x0014,
  Nonce: 0x0015,
  XorRelayedAddress: 0x0016,
  RequestedAddressFamily: 0x0017,
  EvenPort: 0x0018,
  RequestedTransport: 0x0019,
  DontFragment: 0x001a,
  MessageIntegritySha256: 0x001c,
  PasswordAlgorithm: 0x001d,
  Userhash: 0x001e,
  XorMappedAddress: 0x0020,
  ReservationToken: 0x0022,
  /** RFC 6062 §6.2. */
  ConnectionId: 0x002a,
  Priority: 0x0024,
  UseCandidate: 0x0025,
  Padding: 0x0026,
  ResponsePort: 0x0027,
  AdditionalAddressFamily: 0x8000,
  AddressErrorCode: 0x8001,
  PasswordAlgorithms: 0x8002,
  AlternateDomain: 0x8003,
  Icmp: 0x8004,
  Software: 0x8022,
  AlternateServer: 0x8023,
  Fingerprint: 0x8028,
  IceControlled: 0x8029,
  IceControlling: 0x802a,
  ResponseOrigin: 0x802b,
  OtherAddress: 0x802c,
} as const;

/**
 * Comprehension-required attributes (0x0000-0x7FFF) this server understands. Anything else in that
 * range makes a request fail with 420 (RFC 8489 §6.3.1) and an indication be dropped (§6.3.2).
 * PRIORITY and USE-CANDIDATE are listed so ICE connectivity checks aimed at us still get a Binding answer.
 * RFC 5780's CHANGE-REQUEST, RESPONSE-PORT and PADDING are not listed: they stay unknown (420) unless the
 * Binding handler serves them on that listener (src/turn/handlers/binding.ts).
 */
const KNOWN_REQUIRED = [
  Attr.MappedAddress, Attr.Username, Attr.MessageIntegrity, Attr.ErrorCode, Attr.UnknownAttributes,
  Attr.ChannelNumber, Attr.Lifetime, Attr.XorPeerAddress, Attr.Data, Attr.Realm, Attr.Nonce,
  Attr.XorRelayedAddress, Attr.RequestedAddressFamily, Attr.EvenPort, Attr.RequestedTransport,
  Attr.DontFragment, Attr.MessageIntegritySha256, Attr.PasswordAlgorithm, Attr.Userhash,
  Attr.XorMappedAddress, Attr.ReservationToken, Attr.Priority, Attr.UseCandidate, Attr.ConnectionId,
];
const knownRequired = new Uint8Array(0x8000);
for (const t of KNOWN_REQUIRED) knownRequired[t] = 1;

export function isUnknownComprehensionRequired(type: number): boolean {
  return type < 0x8000 && knownRequired[type] === 0;
}

/** Error codes used by this server: RFC 8489 §14.8 and RFC 8656 §19. */
export const ErrorCode = {
  TryAlternate: 300,
  BadRequest: 400,
  Unauthenticated: 401,
  Forbidden: 403,
  UnknownAttribute: 420,
  AllocationMismatch: 437,
  StaleNonce: 438,
  AddressFamilyNotSupported: 440,
  WrongCredentials: 441,
  UnsupportedTransportProtocol: 442,
  PeerAddressFamilyMismatch: 443,
  /** RFC 6062 §6.3. */
  ConnectionAlreadyExists: 446,
  ConnectionTimeoutOrFailure: 447,
  AllocationQuotaReached: 486,
  RoleConflict: 487,
  ServerError: 500,
  InsufficientCapacity: 508,
} as const;

/** Reason phrases as the RFCs spell them (RFC 8489 §14.8, RFC 8656 §19). */
export const REASON_PHRASES: Readonly<Record<number, string>> = {
  300: "Try Alternate",
  400: "Bad Request",
  401: "Unauthenticated",
  403: "Forbidden",
  420: "Unknown Attribute",
  437: "Allocation Mismatch",
  438: "Stale Nonce",
  440: "Address Family not Supported",
  441: "Wrong Credentials",
  442: "Unsupported Transport Protocol",
  443: "Peer Address Family Mismatch",
  446: "Connection Already Exists",
  447: "Connection Timeout or Failure",
  486: "Allocation Quota Reached",
  487: "Role Conflict",
  500: "Server Error",
  508: "Insufficient Capacity",
};

/** REQUESTED-TRANSPORT protocol numbers (RFC 8656 §18.7): IANA protocol numbers. */
export const TRANSPORT_UDP = 17;
/** RFC 6062 §5.1: REQUESTED-TRANSPORT TCP asks for a TCP relay. */
export const TRANSPORT_TCP = 6;

/** Address family values used by the address attributes (RFC 8489 §14.1, RFC 8656 §18.8). */
export const FAMILY_IPV4 = 0x01;
export const FAMILY_IPV6 = 0x02;
