#!/bin/bash
# the sweep as run in this session: A (5e-4, 1e-3, 3e-4) -> B -> C, then the old lr 1e-4 last
cd "$(dirname "$0")/../../.."  # the repository root
deadline=$(date -u -d "10:50" +%s)
PY=.venv/bin/python
left() { echo $(( (deadline - $(date -u +%s)) / 60 )); }
nice -n 5 $PY bench/finetune_sweep.py --lrs 5e-4,1e-3,3e-4 --phases A,B,C --max_minutes $(left)
[ $(left) -gt 5 ] && nice -n 5 $PY bench/finetune_sweep.py --lrs 1e-4 --phases A --max_minutes $(left)
nice -n 5 $PY bench/finetune_sweep.py --report_only
nice -n 5 $PY bench/finetune_sweep.py --phases C,D --phase_c_runs 3 --max_minutes 22   # added 10:38 UTC
