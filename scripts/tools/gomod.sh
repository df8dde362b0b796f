# Go-module helpers for the parts that build from module zips (kube, node, images). Sourced after common.sh.
command -v go >/dev/null || export PATH="/usr/local/go/bin:$PATH"
BUILD="$TOOLS_DIR/build"
mkdir -p "$TOOLS_DIR/bin" "$BUILD"

# timed LABEL CMD...: runs CMD and logs how long it took.
timed() {
  local label="$1" start=$SECONDS
  shift
  "$@"
  log "$label took $((SECONDS - start))s"
}

# moddl MODULE@VERSION FIELD: downloads a module and prints a field of `go mod download -json` (Dir, GoMod).
moddl() {
  local json err
  json="$(go mod download -json "$1" 2>/dev/null || true)"
  err="$(jq -r '.Error // empty' <<<"${json:-"{\"Error\": \"no answer\"}"}")"
  if [[ -n "$err" ]]; then
    log "cannot download $1: $err"
    return 1
  fi
  jq -r ".$2" <<<"$json"
}

# wrapper_module DIR MODULE VERSION SUBVERSION: a throwaway main module in DIR requiring MODULE@VERSION, where
# each relative replace in MODULE's go.mod (`=> ./staging/...`, `=> ./pkg/client`) of a module it requires
# becomes a replace by that module's published tag SUBVERSION: `go install MODULE/cmd@VERSION` refuses those.
wrapper_module() {
  local dir="$1" module="$2" version="$3" subversion="$4" gomod
  rm -rf "$dir"
  mkdir -p "$dir"
  gomod="$(moddl "$module@$version" GoMod)"
  (
    cd "$dir"
    go mod init "ingestion-observability.tools/$(basename "$dir")" >/dev/null 2>&1
    go mod edit -require="$module@$version"
    go mod edit -json "$gomod" | jq -r '
      [.Require[]?.Path] as $required
      | .Replace[]?
      | select((.New.Path | startswith(".")) and (.Old.Path as $old | $required | index($old)))
      | .Old.Path' |
      while read -r sibling; do
        go mod edit -replace="$sibling=$sibling@$subversion"
      done
  )
}

# kube_ldflags VERSION: the version stamps of kubernetes' hack/lib/version.sh (/version, `--version`, the
# Node's kubeletVersion, Helm's kubeVersion), for a build of the k8s.io/kubernetes module at VERSION.
kube_ldflags() {
  local version="$1" minor pkg flags="-s -w"
  minor="${version#v1.}"; minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  echo "$flags"
}
