/**
 * Batched UDP I/O on a UdpSocketState: receive (recvmmsg, or recvmsg per datagram), send (one sendmmsg
 * per run of one socket's datagrams, sendmsg for a run of one), and the IP_RECVERR error queue.
 *
 * Downgrade rule (quinn-udp's): batching is switched off only when the kernel refuses the batch call
 * itself, never because one datagram was refused. recvmmsg's errors concern no datagram, so ENOSYS,
 * EINVAL or EOPNOTSUPP there is the call's. sendmmsg reports a failure of entry k by returning k when
 * k > 0 (the next call starts at k and gets the error) and -errno when k = 0: ENOSYS and EOPNOTSUPP
 * are the call's, but EINVAL may be the call's or that datagram's (destination port 0, a control message
 * the kernel will not take), so the entry is sent alone with sendmsg to tell: if it leaves, the call was
 * refused; if not, the datagram was (dropped and counted in sendRefused), and batching stays on.
 */
import { MSG_DONTWAIT, MSG_ERRQUEUE } from "./constants.ts";
import { EAGAIN, EINTR, EINVAL, EIO, ENOBUFS, ENOMEM, isBatchUnsupported, isCallUnsupported, isDatagramRefused } from "./errno.ts";
import { GsoMessage } from "./gso-message.ts";
import { libc, type Syscalls } from "./libc.ts";
import { CmsgInfo, parseCmsgs } from "./cmsg.ts";
import type { RecvBatch } from "./recv-batch.ts";
import type { SendBatch } from "./send-batch.ts";
import { STAT, recordBatch } from "./stats.ts";
import type { UdpSocketState } from "./udp-state.ts";

/**
 * Receives up to `max` datagrams into `batch`. With recvmmsg: one call. Without (flag off, or the kernel
 * refused it): one recvmsg per datagram until EAGAIN or `max`. Returns the count (0 = would block) or
 * -errno for a socket error (e.g. a pending ICMP error), which the caller handles.
 */
export function receiveBatch(socket: UdpSocketState, batch: RecvBatch, stats: Float64Array, sys: Syscalls = libc, max = batch.capacity): number {
  const fd = socket.fd;
  const caps = socket.caps;
  batch.prepare(max);
  if (caps.recvmmsg) {
    let n: number;
    do n = sys.recvmmsg(fd, batch.vecAddress, max, MSG_DONTWAIT);
    while (n === -EINTR);
    batch.used(n > 0 ? n : 1);
    if (n >= 0) {
      recordBatch(stats, n);
      return n;
    }
    if (n === -EAGAIN) {
      recordBatch(stats, 0);
      return 0;
    }
    if (!isBatchUnsupported(-n)) {
      if (n === -ENOBUFS || n === -ENOMEM) stats[STAT.noBuffer]!++;
      return n;
    }
    stats[STAT.unavailable]!++;
    caps.disable("recvmmsg", -n);
    batch.prepare(max);
  }
  let count = 0;
  while (count < max) {
    const r = sys.recvmsg(fd, batch.msghdrAddress(count), MSG_DONTWAIT);
    batch.used(count + 1);
    if (r === -EINTR) continue;
    if (r < 0) {
      if (r === -EAGAIN || count > 0) break; // an error after some datagrams resurfaces on the next call
      return r;
    }
    batch.setLength(count, r);
    count++;
  }
  return count;
}

/** sendOne's outcomes. */
const SENT = 0;
/** Sent once its TTL/TOS control message was taken away. */
const SENT_WITHOUT_CMSG = 1;
const FAILED = 2;

/**
 * Sends everything queued in `batch`, one sendmmsg per run of entries for the same socket (sendmsg for a
 * run of one, or when sendmmsg is off); on a socket with GSO, runs to one destination with one size leave
 * as one UDP_SEGMENT message each. A datagram the kernel refuses (buffer full, ICMP error pending, a
 * destination it will not send to) is counted and dropped: UDP promises no more. Clears the batch.
 */
export function flushSendBatch(batch: SendBatch, stats: Float64Array, sys: Syscalls = libc): void {
  const total = batch.count;
  const sockets = batch.sockets;
  let i = 0;
  while (i < total) {
    const socket = sockets[i]!;
    if (batch.change[i] === 1) applyTtlTos(batch, i, stats, sys);
    let end = i + 1;
    while (end < total && sockets[end] === socket && batch.change[end] === 0) end++;
    if (socket.maxGsoSegments > 1 && end - i > 1) sendWithGso(batch, socket, i, end, stats, sys);
    else sendRun(batch, socket, i, end, stats, sys);
    i = end;
  }
  batch.clear();
}

/** Entries [i, end) of one socket, without GSO: sendmmsg (sendmsg for one, or when sendmmsg is off). */
function sendRun(batch: SendBatch, socket: UdpSocketState, i: number, end: number, stats: Float64Array, sys: Syscalls): void {
  while (i < end) {
    if (end - i > 1 && socket.caps.sendmmsg) {
      const n = sys.sendmmsg(socket.fd, batch.msghdrAddress(i), end - i, 0);
      if (n > 0) {
        stats[STAT.sendCalls]!++;
        stats[STAT.sendPackets]! += n;
        i += n;
        continue;
      }
      if (n === -EINTR) continue;
      if (isCallUnsupported(-n)) {
        stats[STAT.sendUnavailable]!++;
        socket.caps.disable("sendmmsg", -n);
        continue; // the run again, one sendmsg per datagram
      }
      if (n === -EINVAL) {
        // The call's or entry i's? Entry i alone says: if it leaves as it is, the call was refused.
        if (sendOne(batch, i, stats, sys) === SENT) {
          stats[STAT.sendUnavailable]!++;
          socket.caps.disable("sendmmsg", EINVAL);
        }
        i++;
        continue;
      }
      // Entry i failed (buffer full, destination refused...): count it, skip it, carry on with the rest.
      countFailure(stats, -n);
      i++;
      continue;
    }
    sendOne(batch, i, stats, sys);
    i++;
  }
}

const gsoMessage = new GsoMessage();

/**
 * Entries [i, end) of one socket with GSO: each run of two or more (GsoMessage.runEnd) in one sendmsg,
 * the entries between runs through sendRun. A run the kernel refuses (EIO: no checksum offload on the
 * route's device; EINVAL: a segment over the MTU, a control message it will not take) goes one by one.
 */
function sendWithGso(batch: SendBatch, socket: UdpSocketState, i: number, end: number, stats: Float64Array, sys: Syscalls): void {
  let plain = i; // start of the entries waiting to go without GSO
  let j = i;
  while (j < end) {
    const k = GsoMessage.runEnd(batch, j, end, socket.maxGsoSegments);
    if (k - j < 2) {
      j++;
      continue;
    }
    if (plain < j) sendRun(batch, socket, plain, j, stats, sys);
    let r: number;
    do r = sys.sendmsg(socket.fd, gsoMessage.build(batch, j, k), 0);
    while (r === -EINTR);
    if (r >= 0) {
      stats[STAT.sendCalls]!++;
      stats[STAT.sendPackets]! += k - j;
      stats[STAT.gsoSends]!++;
      stats[STAT.gsoSegments]! += k - j;
      socket.gsoAccepted();
    } else if (r === -EAGAIN || r === -ENOBUFS) {
      // The socket's buffer is full: the segments one by one would meet the same.
      for (let e = j; e < k; e++) countFailure(stats, -r);
    } else {
      if (r === -EIO || r === -EINVAL) {
        stats[STAT.gsoRefused]!++;
        if (socket.gsoRefused()) stats[STAT.gsoDisabled]!++;
      }
      // One by one: each datagram then meets its own fate (a pending ICMP error costs one, not the run).
      sendRun(batch, socket, j, k, stats, sys);
    }
    j = k;
    plain = k;
  }
  if (plain < end) sendRun(batch, socket, plain, end, stats, sys);
}

function countFailure(stats: Float64Array, errno: number): void {
  stats[STAT.sendErrors]!++;
  if (isDatagramRefused(errno)) stats[STAT.sendRefused]!++;
}

/**
 * Sends entry i with sendmsg. A control message refused with EINVAL is taken away and the datagram sent
 * once more without it (quinn-udp does the same for ECN); the socket then sends without one.
 */
function sendOne(batch: SendBatch, i: number, stats: Float64Array, sys: Syscalls): number {
  const socket = batch.sockets[i]!;
  let outcome = SENT;
  let r: number;
  do r = sys.sendmsg(socket.fd, batch.msghdrAddress(i), 0);
  while (r === -EINTR);
  if (r === -EINVAL && batch.hasControl(i)) {
    batch.dropControl(i);
    do r = sys.sendmsg(socket.fd, batch.msghdrAddress(i), 0);
    while (r === -EINTR);
    if (r >= 0) socket.cmsgRefused = true;
    outcome = SENT_WITHOUT_CMSG;
  }
  if (r < 0) {
    countFailure(stats, -r);
    return FAILED;
  }
  stats[STAT.sendCalls]!++;
  stats[STAT.sendPackets]!++;
  return outcome;
}

/**
 * Sticky TTL/TOS (UdpSocketState.planTtlTos): sets the socket options that entry i and the entries after
 * it for the same socket rely on. If the kernel refuses, those entries carry their TTL/TOS as cmsg instead.
 */
function applyTtlTos(batch: SendBatch, i: number, stats: Float64Array, sys: Syscalls): void {
  const socket = batch.sockets[i]!;
  if (socket.applyTtlTos(batch.ttls[i]!, batch.toss[i]!, sys)) return;
  stats[STAT.sendErrors]!++;
  let later = false;
  for (let j = i; j < batch.count; j++) {
    if (batch.sockets[j] !== socket) continue;
    if (j > i && batch.change[j] === 1) {
      later = true; // a later change sets the options the batch assumes after it
      break;
    }
    batch.attachTtlTos(j);
  }
  if (!later) socket.resetTtlTos();
}

/**
 * Reads one message from the socket's error queue (IP_RECVERR) into batch entry 0 and parses its
 * sock_extended_err. Returns false when the queue is empty. The offending destination is batch's
 * source address of entry 0.
 */
export function readErrorQueue(socket: UdpSocketState, batch: RecvBatch, info: CmsgInfo, sys: Syscalls = libc): boolean {
  batch.prepare(1);
  const r = sys.recvmsg(socket.fd, batch.msghdrAddress(0), MSG_ERRQUEUE | MSG_DONTWAIT);
  batch.used(1);
  if (r < 0) return false;
  batch.setLength(0, r);
  parseCmsgs(batch.control, batch.controlOffsetOf(0), batch.controlLength(0), info);
  return true;
}

/** TTL/TOS of received entry i. */
export function receivedTtlTos(batch: RecvBatch, i: number, info: CmsgInfo): CmsgInfo {
  return parseCmsgs(batch.control, batch.controlOffsetOf(i), batch.controlLength(i), info);
}
