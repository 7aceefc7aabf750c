#!/bin/bash
# Ends what load.sh started (by the pids it wrote).
W=${W:-/tmp/bunturn-prof}; cd $W || exit 0
for p in $(cat uc.pids 2>/dev/null) $(cat server.pid 2>/dev/null) $(cat peer.pid 2>/dev/null); do kill $p 2>/dev/null; done
rm -f uc.pids server.pid peer.pid
