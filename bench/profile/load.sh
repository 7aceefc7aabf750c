#!/bin/bash
# Profiling load (iteration 6 of docs/PerformanceIterationLog.md): a server on 127.0.0.1:34780, the echo
# peer on :34790 and PROCS (default 8) turnutils_uclient processes x CLIENTS (default 12) clients (MSGS messages each, default 100000),
# all in the background; pids in $W (default /tmp/bunturn-prof). Then measure.sh / prof.sh; stop.sh ends all.
# usage: load.sh bunturn ROOT [bunturn flags...] | load.sh coturn -
HERE=$(cd "$(dirname "$0")" && pwd)
KIND=$1; ROOT=$2; shift 2
W=${W:-/tmp/bunturn-prof}; mkdir -p $W; cd $W
COMMON="--listening-ip 127.0.0.1 --listening-port 34780 --relay-ip 127.0.0.1 --min-port 40000 --max-port 47999 --realm bench.test --lt-cred-mech --user bench:bench-password --allow-loopback-peers --relay-threads 2"
if [ $KIND = bunturn ]; then
bun $ROOT/src/cli/main.ts $COMMON "$@" > server.log 2>&1 &
else
rm -rf $W/cot; mkdir -p $W/cot
turnserver -n --no-cli --log-file=stdout --simple-log --no-tls --no-dtls --userdb $W/cot/turndb --pidfile $W/cot/pid -L 127.0.0.1 -p 34780 --relay-ip 127.0.0.1 --min-port 40000 --max-port 47999 --realm bench.test --lt-cred-mech --user bench:bench-password --allow-loopback-peers --relay-threads 2 > server.log 2>&1 &
fi
echo $! > server.pid; rm -f uc.pids
sleep 300 | bun $HERE/../lib/echo-peer.ts 127.0.0.1 34790 300 > peer.log 2>&1 &
echo $! > peer.pid
sleep 2
for i in $(seq 1 ${PROCS:-8}); do
turnutils_uclient -c -u bench -w bench-password -e 127.0.0.1 -r 34790 -p 34780 -n ${MSGS:-100000} -l 100 -m ${CLIENTS:-12} -z 0 127.0.0.1 > uc$i.log 2>&1 &
echo $! >> uc.pids
done
