#!/usr/bin/env bash
# Fails when a file includes a header from a layer above its own, or a
# library its layer must not know. Layers depend one way:
#   service -> pipeline -> filters -> core      (bench: a client, -> filters)
# Usage: test_include_layers.sh SOURCE_DIR
set -euo pipefail
cd "${1:?usage: $0 SOURCE_DIR}"

# folder: project folders its files may include from.
declare -A allowed=(
  [core]="core"
  [filters]="core filters"
  [pipeline]="core filters pipeline"
  [bench]="core filters bench"
  [bench/micro]="core filters pipeline bench"
  [service]="core filters pipeline service bench"
)
# folder: third-party headers it must not include (extended regex on the
# path inside <...>). filters knows nothing of HTTP, JSON, TBB or processes.
# pipeline knows nothing of HTTP; it may use JSON only as a storage format
# (the Redis job store's item records, pipeline/redis_job_store.cpp), and
# only in .cpp files, so its headers stay free of it.
declare -A forbidden=(
  [core]="^(opencv2|httplib|nlohmann|oneapi|tbb|curl|archive)"
  [filters]="^(httplib|nlohmann|oneapi|tbb|curl|archive|sys/socket|sys/wait)"
  [pipeline]="^(httplib)"
)

failures=0
check_file() {
  local folder="$1" file="$2" line target
  while IFS= read -r line; do
    if [[ "$line" =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]+\"([a-z_]+)/ ]]; then
      target="${BASH_REMATCH[1]}"
      if [[ " ${allowed[$folder]} " != *" $target "* ]]; then
        echo "layering: $file includes $target/ (a $folder file may include: ${allowed[$folder]})"
        failures=$((failures + 1))
      fi
    elif [[ -n "${forbidden[$folder]:-}" && "$line" =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]+\<([^>]+)\> ]]; then
      target="${BASH_REMATCH[1]}"
      if [[ "$target" =~ ${forbidden[$folder]} ]]; then
        echo "layering: $file includes <$target>, which $folder/ must not depend on"
        failures=$((failures + 1))
      elif [[ "$folder" == pipeline && "$file" == *.hpp && "$target" =~ ^nlohmann ]]; then
        echo "layering: $file includes <$target>: JSON stays inside pipeline/'s .cpp files"
        failures=$((failures + 1))
      fi
    fi
  done < "$file"
}

checked=0
for folder in core filters pipeline bench service; do
  while IFS= read -r -d '' file; do
    layer="$folder"
    [[ "$file" == bench/micro/* ]] && layer="bench/micro"
    check_file "$layer" "$file"
    checked=$((checked + 1))
  done < <(find "$folder" -type f \( -name '*.cpp' -o -name '*.hpp' \) -print0)
done

if ((checked < 50)); then
  echo "layering: only $checked files found under $(pwd): wrong source dir?"
  exit 1
fi
if ((failures > 0)); then
  echo "layering: $failures upward or forbidden include(s) in $checked files"
  exit 1
fi
echo "layering: $checked files, every include points down"
