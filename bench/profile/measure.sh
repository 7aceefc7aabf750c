#!/bin/bash
# measure.sh SECONDS: the server's system calls per relayed packet (perf tracepoints), CPU and context
# switches per thread; relayed packets = half the loopback transmissions (client->server->peer->server->client)
W=${W:-/tmp/bunturn-prof}; mkdir -p $W; cd $W; SP=$(cat server.pid); S=$1
snap() { for t in /proc/$SP/task/*; do echo "$(basename $t) $(cat $t/comm | tr ' ' _) $(awk '{print $14+$15}' $t/stat) $(grep -h ctxt $t/status | awk '{printf "%s ",$2}')"; done; }
snap > a.snap
TIDS=$(ls /proc/$SP/task | paste -sd,)
EV='syscalls:sys_enter_sendmmsg,syscalls:sys_enter_recvmmsg,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvmsg,syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_pwait'
perf stat -x, -e $EV -t $TIDS -- sleep $S 2>stat.txt & perf stat -x, -a -e net:net_dev_xmit -- sleep $S 2>xmit.txt; wait
snap > b.snap
X=$(cut -d, -f1 xmit.txt | head -1); echo "lo xmit: $X  (relayed ~ X/2)"
awk -F, -v x=$X '{printf "%-40s %10d  per relayed pkt %.3f\n",$3,$1,$1/(x/2)}' stat.txt
join a.snap b.snap | awk -v x=$X '{cpu=$7-$3; if(cpu>0||$8-$4>100) printf "%-8s %-14s cpu %.2fs  %.3f us/pkt  vol %.3f/pkt  invol %.3f/pkt\n",$1,$2,cpu/100,cpu/100/(x/2)*1e6,($8-$4)/(x/2),($9-$5)/(x/2)}'
