#!/usr/bin/env bash
# One prepared accelerator check, for a machine with CUDA: the device tests, the
# speed of the paper-scale presets and of the meta-RL iterations, then the whole test suite with CUDA visible
# (presets default to device "auto", so most training tests then run on the GPU).
#
#   OUT=results-dir bash benchmarks/device_check.sh       # from the repository root
#
# DEVICE (default cuda), PRESETS (comma-separated) and SUITE=0 (skip the suite)
# change what it does, e.g. for a dry run on the CPU:
#   DEVICE=cpu PRESETS=regression-2modes-maml SUITE=0 PYTHON=.venv/bin/python bash benchmarks/device_check.sh
#
# Needs a Python with torch (CUDA build), numpy, pyyaml, tqdm, matplotlib,
# scikit-learn, tensorboard, pillow and pytest; mmaml itself is read from src/.
# Image presets are timed on random images of their size (--synthetic), so no
# data set is needed. Each step is bounded by a timeout; the summary is in
# $OUT/summary.txt; the whole script stays under 10 minutes.
set -u
out=${OUT:-device-check}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    local rc=$?
    echo "$name: exit $rc in $((SECONDS - t0)) s" | tee -a "$out/summary.txt"
    tail -n 15 "$out/$name.txt"
}
: >"$out/summary.txt"
step gpu 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
step device_tests 90 "$py" -m pytest -q -rs tests/test_devices.py
presets=${PRESETS:-regression-2modes-maml,regression-2modes-multi-maml,regression-2modes-film,regression-3modes-film,regression-5modes-film,classification-2modes-maml-5w1s,classification-2modes-mumomaml-5w1s,classification-2modes-mumomaml-5w5s,classification-3modes-mumomaml-5w1s,classification-2modes-mumomaml-20w1s}
step presets 150 "$py" benchmarks/bench_presets.py --device "${DEVICE:-cuda}" --synthetic --json "$out/presets.json" \
    --presets "$presets"
# meta-RL iterations on the device (the half-cheetah's physics stays on the CPU, in 8 MuJoCo threads)
step rl 120 "$py" benchmarks/bench_rl.py --device "${DEVICE:-cuda}" --skip-envs --repeats 2 --threads 4 \
    --presets rl-navigation-maml,rl-navigation-mumomaml,rl-cheetah-speed-mumomaml --set sim_threads=8 \
    --json "$out/rl.json"
if [ "${SUITE:-1}" != 0 ]; then
    step suite 240 "$py" -m pytest -q -x -p no:cacheprovider tests
fi
cat "$out/summary.txt"
