#!/usr/bin/env bash
# Pooled k-fold cv of several recipes ("arms") on several real sets, every (arm, set, fold) its
# own process, P at a time, on one big machine (a GPU with many CPU cores): the protocol of
# docs/results/real-sets-cv.md. Results: $CV_ROOT/<arm>__<set>/ (cv_summary.json, oof_scores.csv,
# cv.png) and, for machines that return few files, one archive $CV_ROOT.tar.gz.
#   DATA=../shared/datasets CV_ROOT=outputs/cv_queue P=14 bash scripts/cv_queue.sh arms.txt
# arms.txt: one arm a line, "<name> <cv/train overrides ...>", e.g.
#   hybrid model.net.stem=resnet
#   peer256 cv.arm=peer cv.peer.img_size=256
set -u
ARMS=${1:?give an arms file: one '<name> <overrides...>' a line}
DATA=${DATA:-../shared/datasets}
SETS=${SETS:-kolektorsdd mvtec_bottle visa_capsules}
CV_ROOT=${CV_ROOT:-outputs/cv_queue}
FOLDS=${FOLDS:-5}
P=${P:-$(nproc)}
PYTHON=${PYTHON:-python3}
mkdir -p "$CV_ROOT"
jobs="$CV_ROOT/jobs.txt"; : > "$jobs"
while read -r arm overrides; do
  [ -z "$arm" ] || [ "${arm#\#}" != "$arm" ] && continue
  echo "$overrides" > "$CV_ROOT/arm_$arm.txt"
  for set in $SETS; do for ((k = 0; k < FOLDS; k++)); do echo "$arm $set $k" >> "$jobs"; done; done
done < "$ARMS"
run_fold() {  # fold 0 draws the folds (folds.csv); the others wait for it, then follow it
  arm=$1 set=$2 k=$3 dir="$CV_ROOT/${1}__${2}" start=$(date +%s)
  if [ "$k" != 0 ]; then while [ ! -f "$dir/folds.csv" ]; do sleep 2; done; sleep 3; fi
  OMP_NUM_THREADS=1 $PYTHON -m anomaly_vit.cv data=manifest "data.manifest=$DATA/$set/manifest.csv" \
    cv.folds="$FOLDS" "cv.dir=$dir" "cv.only=[$k]" cv.threads=1 data.progress=false \
    trainer.enable_progress_bar=false callbacks.progress=null $(cat "$CV_ROOT/arm_$arm.txt") \
    > "$CV_ROOT/log_${arm}__${set}__$k.txt" 2>&1
  echo "$(date +%T) rc=$? $arm $set fold $k: $(( $(date +%s) - start )) s"
}
export -f run_fold; export CV_ROOT FOLDS DATA PYTHON
echo "$(date +%T) $(wc -l < "$jobs") folds, $P at a time"
xargs -P "$P" -L 1 bash -c 'run_fold "$0" "$1" "$2"' < "$jobs"
for dir in "$CV_ROOT"/*__*/; do  # pool what finished (a fold that failed is listed as missing)
  [ -f "$dir/cv_summary.json" ] || OMP_NUM_THREADS=2 $PYTHON -m anomaly_vit.cv cv.dir="$dir" \
    cv.aggregate=true > "$dir/aggregate.log" 2>&1
done
tar -czf "$CV_ROOT.tar.gz" --exclude='*.ckpt' --exclude='tensorboard' --exclude='rollouts' "$CV_ROOT"
echo "$(date +%T) done: $CV_ROOT.tar.gz"
