#!/usr/bin/env bash
# scripts/run-default.sh — set up a fresh Debian machine, build, and run the main job on the
# embedded default: train LeNet-5 on Fashion-MNIST (Debian's dataset-fashion-mnist) and evaluate it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p runs
./build/dnnguard train --net lenet5 --data fashion-mnist --epochs "${EPOCHS:-20}" --opt adam --lr 1e-3 --schedule cosine \
  --batch 128 --seed 1 --log runs/lenet5-fashion.jsonl --out runs/lenet5-fashion.safetensors
./build/dnnguard eval --net lenet5 --model runs/lenet5-fashion.safetensors --data fashion-mnist
