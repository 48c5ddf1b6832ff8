#!/usr/bin/env bash
# Train the Boxing world's dynamics on one GPU in about nine minutes of wall clock.
#
# The CPU recipe (`worldgen make-world --env ALE/Boxing-v5`) gets 4,000 teacher steps at batch 32
# in its three hours: 0.7 passes over the data, too few to beat repeat-last-frame at h32. This
# script runs the same stages (teacher, sCD, both on the world's own rollouts, reward head) with
# the same small networks, so the world still plays in real time on a CPU, but at GPU batch sizes
# and with a wall-clock budget per stage (`run.minutes`). The autoencoder is the CPU run's.
#
#   AE=worlds/boxing/runs/ae/export INIT=worlds/boxing/runs/teacher/export \
#     W=/tmp/boxing SAVE=out/boxing_gpu bash demos/boxing_on_a_gpu.sh
#
# Each stage's export and metrics are written as a tarball into SAVE as soon as the stage ends,
# so a run cut short keeps what it finished. Unpack them into worlds/boxing/runs and pack:
#   worldgen pack --runs worlds/boxing/runs --dynamics scd_own ...
set -u
: "${AE:?the autoencoder export folder}" "${W:?a work folder}" "${SAVE:?a folder for the results}"
INIT=${INIT:-}
TEACHER_MIN=${TEACHER_MIN:-2.5}
STAGE_MIN=${STAGE_MIN:-0.7}
EPISODES=${EPISODES:-100}
NUM_ENVS=${NUM_ENVS:-12}
mkdir -p "$W/runs" "$SAVE"
export PYTHONUNBUFFERED=1
wg() { python3 -m worldgen.cli "$@"; }

save() {  # save NAME: the stage's export, config and metrics, as one tarball
    tar -czf "$SAVE/$1.tgz" -C "$W/runs" "$1/export" "$1/metrics.jsonl" "$1/train_config.json" 2>/dev/null
    ls -la "$SAVE/$1.tgz"
}

stage() {  # stage NAME KIND ARGS...: train, and once more in fp32 if the bf16 run fails before its first checkpoint
    local name=$1 kind=$2
    shift 2
    local t0=$SECONDS
    wg train "$kind" --data "$W/data" --out "$W/runs/$name" "$@" || {
        echo "== $name failed; retrying without bf16"
        rm -rf "$W/runs/$name"
        wg train "$kind" --data "$W/data" --out "$W/runs/$name" "$@" --set run.bf16=false
    }
    echo "== $name: $((SECONDS - t0)) s"
    save "$name"
}

common=(--set "ae=$AE" --set run.image_every=0 --set run.ckpt_every=2000 --set run.log_every=100 --set run.steps=200000)
t0=$SECONDS
wg collect --env ALE/Boxing-v5 --out "$W/data" --episodes "$EPISODES" --policy random --num-envs "$NUM_ENVS" --seed 1000
cp "$W/data/manifest.json" "$SAVE/manifest.json"
echo "== collect: $((SECONDS - t0)) s"

init=()
[ -n "$INIT" ] && init=(--set "init=$INIT" --set optim.warmup_steps=100)
stage teacher teacher --preset small "${common[@]}" "${init[@]}" --set run.batch_size=256 --set optim.lr=5e-4 \
    --set run.minutes="$TEACHER_MIN"
stage scd scm "${common[@]}" --set mode=scd --set "teacher=$W/runs/teacher/export" --set run.batch_size=128 \
    --set optim.lr=4e-5 --set tangent_warmup=500 --set run.minutes="$STAGE_MIN"
stage teacher_own teacher "${common[@]}" --set run.batch_size=128 --set "init=$W/runs/teacher/export" \
    --set own.share=0.5 --set own.unroll_start=2 --set own.curriculum_steps=400 --set own.unroll=12 \
    --set own.sampler_steps=2 --set "own.generator=$W/runs/scd/export" --set optim.lr=3e-5 --set optim.warmup_steps=50 \
    --set optim.ema_decay=0.995 --set run.minutes="$STAGE_MIN"
stage scd_own scm "${common[@]}" --set run.batch_size=128 --set own.share=0.5 --set own.unroll_start=2 \
    --set own.curriculum_steps=300 --set own.unroll=8 --set own.generator=self --set own.sampler_steps=2 --set mode=scd \
    --set "teacher=$W/runs/teacher_own/export" --set tangent_warmup=500 --set optim.lr=4e-5 --set run.minutes="$STAGE_MIN"
stage reward reward --preset small "${common[@]}" --set run.batch_size=256 --set run.minutes=0.4
