#!/bin/bash
# Part B fine-tuning settings, run one after another (one heavy job at a time).
cd /work/main/benchmarks/research
nice -n 5 python finetune.py --model xraynet-binary-v2 --lr 3e-4 --epochs 12 > /tmp/research/log_ft_v2_3e-4.txt 2>&1
nice -n 5 python finetune.py --model cnn5-binary --lr 1e-4 --epochs 12 > /tmp/research/log_ft_cnn5_1e-4.txt 2>&1
nice -n 5 python finetune.py --model xraynet-binary --lr 3e-4 --epochs 12 > /tmp/research/log_ft_xb_3e-4.txt 2>&1
