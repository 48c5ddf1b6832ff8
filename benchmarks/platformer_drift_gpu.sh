#!/usr/bin/env bash
# Issue 10's lever run at GPU scale: does a longer own-rollout run keep the Platformer's content?
#
# On the CPU, the best teacher (own rollouts + context noise, `configs/teacher_own_noise.toml`,
# 800 steps at batch 32) kept most new content over 1,000 frames, but its 2-step student kept
# well under half of it (README, "Which lever keeps the content"). This script asks whether the
# budget was the limit: it continues that teacher at batch 128 for TEACHER_MIN minutes, then
# distils three students side by side on the one GPU (the small networks leave it mostly idle):
#   scd_a: sCD on own rollouts from the new teacher (the CPU recipe, `configs/scd_own.toml`)
#   scd_b: the same with three quarters of each batch on own rollouts of up to 16 frames
#   scd_c: the CPU recipe from the old teacher (the budget alone, same teacher)
# and judges them and the new teacher (8 steps) with `worldgen eval` (content over 1,000 frames, 8 unseen levels) beside
# the shipped world.
#
#   DATA=data/platformer AE=models/pretrained/platformer/ae TEACHER=runs/ownnoise/teacher/export \
#     GEN=runs/ownnoise/scd/export W=/tmp/pf SAVE=out bash benchmarks/platformer_drift_gpu.sh
#
# Each stage's export and metrics are saved as a tarball into SAVE as soon as it ends.
set -u
: "${DATA:?the dataset}" "${AE:?the autoencoder export}" "${TEACHER:?the teacher export to continue}" \
  "${GEN:?the consistency export that makes the first own rollouts}" "${W:?a work folder}" "${SAVE:?a folder for results}"
TEACHER_MIN=${TEACHER_MIN:-2.5}
SCD_MIN=${SCD_MIN:-2.0}
TOTAL_S=${TOTAL_S:-560}  # the eval gets what is left of this, so that the script ends inside a device call's limit
EVAL_ARGS=${EVAL_ARGS:-}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$W/runs" "$SAVE"
export PYTHONUNBUFFERED=1
wg() { python3 -m worldgen.cli "$@"; }
save() { tar -czf "$SAVE/$1.tgz" -C "$W/runs" "$1/export" "$1/metrics.jsonl" "$1/train_config.json" 2>/dev/null; ls -la "$SAVE/$1.tgz"; }

common=(--data "$DATA" --set "ae=$AE" --set run.image_every=0 --set run.ckpt_every=5000 --set run.log_every=100
        --set run.steps=200000 --set run.threads=4)
t0=$SECONDS
wg train teacher --out "$W/runs/teacher" --config "$HERE/configs/teacher_own_noise.toml" "${common[@]}" \
    --set "init=$TEACHER" --set "own.generator=$GEN" --set run.batch_size=128 --set optim.lr=5e-5 \
    --set run.minutes="$TEACHER_MIN" > "$SAVE/teacher.log" 2>&1
echo "== teacher: $((SECONDS - t0)) s"; save teacher

scd() {  # scd NAME TEACHER_EXPORT ARGS...
    local name=$1 teacher=$2
    shift 2
    wg train scm --out "$W/runs/$name" --config "$HERE/configs/scd_own.toml" "${common[@]}" --set "teacher=$teacher" \
        --set run.batch_size=128 --set optim.lr=4e-5 --set tangent_warmup=500 --set run.minutes="$SCD_MIN" "$@" \
        > "$SAVE/$name.log" 2>&1
    save "$name"
}
t0=$SECONDS
scd scd_a "$W/runs/teacher/export" &
scd scd_b "$W/runs/teacher/export" --set own.share=0.75 --set own.unroll=16 --set own.curriculum_steps=500 &
scd scd_c "$TEACHER" &
wait
echo "== students: $((SECONDS - t0)) s"

t0=$SECONDS
EVAL_S=$((TOTAL_S - SECONDS))
methods=()
for v in scd_a scd_b scd_c; do [ -f "$W/runs/$v/export/config.json" ] && methods+=(--method "$v=$W/runs/$v/export:2"); done
methods+=(--method "teacher_gpu=$W/runs/teacher/export:8")
timeout "$EVAL_S" python3 -m worldgen.cli eval --world models/pretrained/platformer --no-teacher --seeds 8 \
    --data "$DATA" "${methods[@]}" $EVAL_ARGS --out "$SAVE/eval" > "$SAVE/eval.log" 2>&1
rc=$?
echo "== eval: $((SECONDS - t0)) s (exit $rc)"
