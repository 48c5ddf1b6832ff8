#!/usr/bin/env bash
# PPO in the worlds and in the real games, four agents side by side on one GPU machine.
#
# On the 2-core CPU an agent gets 100,000-300,000 steps in a session, too few for PPO to learn
# Freeway's dodging or the Platformer's flag. Here each run trains for the same wall-clock budget
# (MIN minutes; a run is stopped with Ctrl-C and keeps its last checkpoint, saved every 25,000
# steps) with its policy on the GPU: in the world the frames come from the batched world on the
# GPU, in the real game from NUM_ENVS processes on the CPU cores. The steps each agent reached
# are in its zip and at the end of its log.
#
#   SAVE=out MIN=6.5 bash benchmarks/agents_on_a_gpu.sh
#   worldgen agent eval --agent out/freeway_world.zip --agent out/freeway_real.zip --trust-agent \
#     --env ALE/Freeway-v5 --world freeway --episodes 10
set -u
: "${SAVE:?a folder for the agents and their logs}"
MIN=${MIN:-6.5}
NUM_ENVS=${NUM_ENVS:-64}
STEPS=${STEPS:-5000000}
mkdir -p "$SAVE"
export PYTHONUNBUFFERED=1

train() {  # train NAME ARGS...: one agent for MIN minutes (or STEPS), its log beside it
    local name=$1
    shift
    timeout -s INT "${MIN}m" python3 -m worldgen.cli agent train --steps "$STEPS" --num-envs "$NUM_ENVS" \
        --checkpoint-every 25000 --out "$SAVE/$name.zip" --force "$@" >"$SAVE/$name.log" 2>&1
    echo "$name: exit $? after $SECONDS s; $(tr '\r' '\n' <"$SAVE/$name.log" | grep -o '[0-9]*/[0-9]* \[[^]]*\]' | tail -1)"
}

train freeway_world --world freeway --threads 2 &
train freeway_real --world freeway --real-env ALE/Freeway-v5 --threads 1 &
train platformer_world --world platformer --threads 2 &
train platformer_real --world platformer --real-env worldgen/Platformer-v0 --threads 1 &
wait
ls -la "$SAVE"
