#!/bin/bash
# compile-times.sh ROOT [SECONDS]: JSC's compilations in bunturn (checkout ROOT) under issue 18's paced TLS
# load (turnutils_uclient -t -S, 20 clients, 100-byte messages every 20 ms; `--relay-threads 2`), for SECONDS
# (default 92). bunturn runs with BUN_JSC_reportCompileTimes=1; each line of its output is prefixed by the
# seconds since it started ($W/compile.log). Then: per tier, ms and KB of machine code in the bench's window
# (15-75 s) and after the start-up warm-up (>= 1 s), and per function and tier in the window. Run it under
# the bench lock. Needs openssl and coturn's client tools.
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$1; S=${2:-92}
W=${W:-/tmp/bunturn-compile}; mkdir -p $W; cd $W
[ -f key.pem ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -subj /CN=localhost -days 2 2>/dev/null
COMMON="--listening-ip 127.0.0.1 --listening-port 34880 --tls-listening-port 34881 --cert $W/cert.pem --pkey $W/key.pem --relay-ip 127.0.0.1 --min-port 48000 --max-port 49999 --realm bench.test --lt-cred-mech --user bench:bench-password --allow-loopback-peers --relay-threads 2"
stamp='import sys, time
t0 = time.monotonic()
for line in sys.stdin: sys.stdout.write("%.3f %s" % (time.monotonic() - t0, line)); sys.stdout.flush()'
BUN_JSC_reportCompileTimes=1 bun $ROOT/src/cli/main.ts $COMMON > >(python3 -u -c "$stamp" > compile.log) 2>&1 &
SERVER=$!
# The sleep's pid is kept: it would otherwise outlive the run holding the caller's lock descriptor.
{ sleep $((S + 10)) & echo $! > sleep.pid; wait; } | bun $HERE/../lib/echo-peer.ts 127.0.0.1 34890 $((S + 10)) > peer.log 2>&1 &
PEER=$!
sleep 2
turnutils_uclient -t -S -c -u bench -w bench-password -e 127.0.0.1 -r 34890 -p 34881 -n $((S * 50)) -l 100 -m 20 -z 20 127.0.0.1 > uc.log 2>&1 &
UC=$!
sleep $S
kill $UC $SERVER $PEER $(cat sleep.pid) 2>/dev/null
sleep 1
python3 - compile.log <<'PY'
import re, sys
from collections import defaultdict
pat = re.compile(r'^(\d+\.\d+) Optimized (\S*?)#(\w+):\[.*?\] using (\w+) with \w+ into (\d+) bytes in ([\d.]+) ms')
spans = {'15-75 s': lambda t: 15 <= t < 75, '>= 1 s': lambda t: t >= 1}
tiers = defaultdict(lambda: [0, 0.0, 0]); rows = defaultdict(lambda: [0, 0.0, 0])
for line in open(sys.argv[1], errors='replace'):
    m = pat.match(line)
    if not m: continue
    t, name, h, tier, size, ms = float(m.group(1)), m.group(2), m.group(3), m.group(4), int(m.group(5)), float(m.group(6))
    for span, inside in spans.items():
        if inside(t):
            r = tiers[(tier, span)]; r[0] += 1; r[1] += ms; r[2] += size
    if spans['15-75 s'](t):
        r = rows[(name or '#' + h, tier)]; r[0] += 1; r[1] += ms; r[2] += size
for (tier, span), (n, ms, size) in sorted(tiers.items()):
    if tier != 'Baseline': print(f'{tier:4} {span:8} {n:4} compilations {ms:7.1f} ms {size / 1024:5.0f} KB')
print(f'{"function (15-75 s)":32} {"tier":4} {"count":>5} {"ms":>7} {"KB":>6}')
for (name, tier), (n, ms, size) in sorted(rows.items(), key=lambda kv: -kv[1][1])[:30]:
    print(f'{name[:32]:32} {tier:4} {n:5} {ms:7.2f} {size / 1024:6.1f}')
PY
