#!/usr/bin/env bash
# Two Platformer worlds from the same 150 video clips and the same training budget: one on the
# latent action model's codes (no true action read), one on the true actions recorded beside the
# clips (the labelled reference). Then each is judged: the code world on the codes its latent
# action model reads off the real frames (`eval --lam`), the labelled one on the game's keys.
#
# Needs: data/platformer_video (README, "Worlds from video"), runs/lam_platformer/export.
#   [LAM=EXPORT NAME=lam_x] bash benchmarks/latent_action_worlds.sh [TEACHER_STEPS] [SCD_STEPS]
# LAM and NAME pick another latent action model and the name of its world (worlds/video_NAME);
# every step already done (labelled copy, stage, world, eval) is skipped.
set -euo pipefail
TEACHER_STEPS=${1:-3000}
SCD_STEPS=${2:-400}
AE=models/pretrained/platformer/ae
LAM=${LAM:-runs/lam_platformer/export}
NAME=${NAME:-lam}
[ -f "data/platformer_video_$NAME/manifest.json" ] ||
    worldgen data label data/platformer_video --lam "$LAM" --out "data/platformer_video_$NAME" --rules worldgen/Platformer-v0
[ -f data/platformer_video_true/manifest.json ] ||
    worldgen data label data/platformer_video --from-clips --out data/platformer_video_true
for name in "$NAME" true; do
    data=data/platformer_video_$name runs=runs/video_world_$name
    # The same frames as data/platformer_video: share its latent cache (hard links) instead of encoding again.
    [ -d "$data/latents" ] || cp -al data/platformer_video/latents "$data/latents"
    mkdir -p "$runs/ae"
    [ -e "$runs/ae/export" ] || ln -s "$(realpath "$AE")" "$runs/ae/export"
    common=(--data "$data" --set "ae=$AE" --set run.threads=2 --set run.image_every=0)
    [ -f "$runs/teacher/export/config.json" ] ||
        worldgen train teacher --out "$runs/teacher" --preset small --steps "$TEACHER_STEPS" "${common[@]}"
    [ -f "$runs/scd/export/config.json" ] ||
        worldgen train scm --mode scd --out "$runs/scd" --teacher "$runs/teacher/export" --steps "$SCD_STEPS" "${common[@]}"
    [ -f "$runs/reward/export/config.json" ] ||
        worldgen train reward --out "$runs/reward" --preset small --steps 300 "${common[@]}"
    [ -f "worlds/video_$name/world.json" ] ||
        worldgen pack --runs "$runs" --dynamics scd --data "$data" --out "worlds/video_$name" --name "video_$name"
done
eval_args=(--no-teacher --seeds 8 --horizons 1,8,32 --content-streams 4 --threads 2)
[ -f "runs/video_world_$NAME/eval/report.json" ] ||
    worldgen eval --world "worlds/video_$NAME" --lam "$LAM" "${eval_args[@]}" --out "runs/video_world_$NAME/eval"
[ -f runs/video_world_true/eval/report.json ] ||
    worldgen eval --world worlds/video_true "${eval_args[@]}" --out runs/video_world_true/eval
