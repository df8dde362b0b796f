#!/usr/bin/env bash
# Apache Kafka (single-node KRaft broker) as plain jars from Maven: kafka_2.13, its runtime dependencies and
# an SLF4J binding, into $TOOLS_DIR/kafka/<version>/libs. Run with `java -cp "<libs>/*" kafka.Kafka ...`
# (ingestion_observability.localstack.kafka does that). Maven's own cache (~/.m2) keeps the downloads.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
source "$here/common.sh"

# 3.9.x: the last line that still speaks the older protocol versions kafka-python uses.
KAFKA_VERSION="${KAFKA_VERSION:-3.9.2}"
dest="$TOOLS_DIR/kafka/$KAFKA_VERSION"

if [[ "$(cat "$dest/.version" 2>/dev/null)" == "$KAFKA_VERSION" && -d "$dest/libs" ]]; then
  log "kafka $KAFKA_VERSION already installed: $dest/libs"
  exit 0
fi
command -v java >/dev/null || { log "java (17+) is needed to run kafka"; exit 1; }
command -v mvn >/dev/null || { log "mvn is needed to fetch the kafka jars (apt-get install maven)"; exit 1; }

start=$SECONDS
build_dir="$TOOLS_DIR/build/kafka-$KAFKA_VERSION"
rm -rf "$build_dir" "$dest"
mkdir -p "$build_dir" "$dest"
cp "$here/kafka/pom.xml" "$build_dir/pom.xml"  # maven works beside its pom: keep that out of the repo

log "fetching kafka_2.13 $KAFKA_VERSION and its dependencies"
if ! mvn -q -B -Dstyle.color=never -f "$build_dir/pom.xml" dependency:copy-dependencies \
  -Dkafka.version="$KAFKA_VERSION" -DincludeScope=runtime -DoutputDirectory="$dest/libs.partial" \
  >"$build_dir/mvn.log" 2>&1; then
  cat "$build_dir/mvn.log" >&2
  exit 1
fi
ls "$dest/libs.partial/kafka_2.13-$KAFKA_VERSION.jar" >/dev/null
got="$(java -cp "$dest/libs.partial/*" kafka.Kafka --version 2>/dev/null | head -1)"
[[ "$got" == "$KAFKA_VERSION"* ]] || { log "kafka.Kafka --version said '$got', expected $KAFKA_VERSION"; exit 1; }
mv "$dest/libs.partial" "$dest/libs"
echo "$KAFKA_VERSION" > "$dest/.version"
log "kafka $KAFKA_VERSION: $(find "$dest/libs" -name '*.jar' | wc -l) jars in $dest/libs ($((SECONDS - start))s)"
