#!/bin/bash
# prof.sh NAME: perf record (-F 999 -g) the server's relay threads (bunturn: "Worker", coturn: "turnserver")
# for 6 s, then the share of samples per system call and per (system call, top kernel symbol)
W=${W:-/tmp/bunturn-prof}; mkdir -p $W; cd $W; SP=$(cat server.pid)
TIDS=$(for t in /proc/$SP/task/*; do c=$(cat $t/comm); case "$c" in Worker|turnserver) echo $(basename $t);; esac; done | paste -sd,)
perf record -F 999 -g -o $1.data -t $TIDS -- sleep 6 2>/dev/null >/dev/null
perf script -i $1.data 2>/dev/null > $1.txt
python3 - $W/$1.txt <<'PY'
import re,collections,sys
samples=open(sys.argv[1]).read().split('\n\n')
c=collections.Counter(); sub=collections.Counter(); k=0
for s in samples:
    lines=[l.strip() for l in s.strip().split('\n') if l.strip()]
    if len(lines)<2: continue
    frames=[l.split(None,1)[1] if ' ' in l else l for l in lines[1:]]
    syms=[f.split(' (')[0] for f in frames]
    if '[kernel' in frames[0]: k+=1
    sc=None
    for f in syms:
        m=re.match(r'__x64_sys_(\w+)',f)
        if m: sc=m.group(1); break
    if sc is None:
        sc=('kernel-other' if '[kernel' in frames[0] else 'user:'+frames[0].split('(')[-1].rstrip(')').split('/')[-1])
    c[sc]+=1
    if not sc.startswith('user'): sub[(sc,re.sub(r'\+0x.*','',syms[0]))]+=1
tot=sum(c.values()); print('samples',tot,'kernel %.1f%%'%(100*k/tot))
for kk,v in c.most_common(12): print(f"{100*v/tot:5.1f}% {kk}")
print('---')
for kk,v in sub.most_common(14): print(f"{100*v/tot:5.1f}% {kk}")
PY
