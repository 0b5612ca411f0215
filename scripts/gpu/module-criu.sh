# Sourced by validate.sh and bench.sh after the module is copied to out/CriuCheckpoint: the module's own CRIU, carried
# packed as .gpumod/criu.tar.xz (scripts/install-criu.sh's PREFIX), becomes out/CriuCheckpoint/tools/criu and the one the
# module uses (CRIU_PATH, which the kit's bootstrap points at its own criu, is unset), when it passes `criu check` on
# this host; else the kit's stays in use. The kit's criu is kept as CRIUCHECKPOINT_FALLBACK_CRIU for comparisons.
export CRIUCHECKPOINT_FALLBACK_CRIU=$CRIU_PATH
if [ -f .gpumod/criu.tar.xz ]; then
  mkdir -p out/CriuCheckpoint/tools/criu
  python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='fully_trusted')" .gpumod/criu.tar.xz out/CriuCheckpoint/tools/criu
  if out/CriuCheckpoint/tools/criu/bin/criu check > "$OUT/criu-check.txt" 2>&1; then
    unset CRIU_PATH
    echo "module criu: $(out/CriuCheckpoint/tools/criu/bin/criu --version | head -n1) (passes criu check); kit criu: $("$CRIUCHECKPOINT_FALLBACK_CRIU" --version | head -n1)" | tee -a "$OUT/criu-check.txt"
  else
    echo "module criu fails 'criu check' here (see criu-check.txt): the kit's criu is used" | tee -a "$OUT/criu-check.txt"
  fi
fi
