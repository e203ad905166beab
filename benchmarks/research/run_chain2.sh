#!/bin/bash
# Remaining Part B settings, against a snapshot of the committed package (git archive HEAD -> /tmp/pz_snapshot),
# because the editable src/ tree was being changed by other workers during the run.
cd /work/main/benchmarks/research
export PYTHONPATH=/tmp/pz_snapshot/src
nice -n 5 python finetune.py --model cnn5-binary --lr 1e-4 --epochs 12 > /tmp/research/log_ft_cnn5_1e-4.txt 2>&1
nice -n 5 python finetune.py --model xraynet-binary --lr 1e-4 --epochs 12 > /tmp/research/log_ft_xb_1e-4.txt 2>&1
