#!/usr/bin/env bash
# The paper's ablation at one equal budget: stage 3 of the full model and of w/o IM (full attention), w/o AD (one
# shared timestep) and w/o MR (root-centric motion, with its own stage-1 VAE, cache and stage 2), each STEPS steps from
# its stage-2 init (the last quarter decaying), then T2VM on 64 test clips x 3 replications and the table against the
# paper's. Needs the shipped model's stages: data/egoworld, runs/stage0_video_vae, runs/stage1_motion_vae,
# runs/evaluators and cache/egoworld (docs/training.md and docs/evaluation.md). Every step resumes where it stopped.
#
#   bash scripts/reproduce_ablation.sh [STEPS]        # default 1600
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-1600}
decay=$((steps / 4))

python -m training.stage1_motion_vae --config training/configs/stage1_motion_vae_wo_mr.json
for split in train val; do
  [ -f cache/egoworld_root_centric/$split/index.json ] || python -m training.cache_latents --data_root data/egoworld \
      --split $split --output_dir cache/egoworld_root_centric/$split \
      --video_vae runs/stage0_video_vae/video_vae --motion_vae runs/stage1_motion_vae_wo_mr/motion_vae
done
python -m training.stage2_t2m --config training/configs/stage2_t2m_wo_mr.json

for variant in full wo_mr wo_im wo_ad; do
  config=training/configs/stage3_joint_$variant.json
  motion_vae=runs/stage1_motion_vae/motion_vae
  [ $variant = full ] && config=training/configs/stage3_joint.json
  [ $variant = wo_mr ] && motion_vae=runs/stage1_motion_vae_wo_mr/motion_vae
  python -m training.stage3_joint --config $config --output_dir runs/ablation/$variant --max_steps $steps --decay_steps $decay
  python -m training.build_pipeline --video_vae runs/stage0_video_vae/video_vae --motion_vae $motion_vae \
      --transformer runs/ablation/$variant/transformer --text_encoder minilm --dtype float16 --output_dir runs/ablation/pipe_$variant
  python -m egotwin.eval --checkpoint runs/ablation/pipe_$variant --mode t2vm --data_root data/egoworld --split test \
      --num_samples 64 --replications 3 --seed 0 --evaluators runs/evaluators --output_dir runs/ablation/eval_$variant
done
python -m egotwin.eval.table full=runs/ablation/eval_full wo_mr=runs/ablation/eval_wo_mr \
    wo_im=runs/ablation/eval_wo_im wo_ad=runs/ablation/eval_wo_ad --ablation --output_dir runs/ablation/table
