# Sourced by bench/lifecycle.sh and tests/oci-validation.sh: taking a
# controller off the cgroup2 hierarchy of a hybrid host, so that it can be
# bound to a v1 hierarchy of its own, and giving it back.
#
# The caller sets CG (/sys/fs/cgroup), CGROUP2_SAVED (a dir where what was
# changed is noted) and defines note().

# v2_disable C: a controller enabled in cgroup2's subtree_control cannot be
# bound to a v1 hierarchy (EBUSY, "already mounted"): disables C in every
# cgroup2 cgroup's subtree_control, deepest first, and lists them in
# $CGROUP2_SAVED/v2-subtree-C so that v2_restore can enable it again.
v2_disable() {
  local c=$1 f list=$CGROUP2_SAVED/v2-subtree-$1
  : >"$list"
  while IFS= read -r f; do
    grep -qw "$c" "$f" 2>/dev/null || continue
    echo "$f" >>"$list"
    echo "-$c" >"$f" || { note "$c: cannot disable it in $f"; return 1; }
  done < <(find "$CG/unified" -depth -name cgroup.subtree_control 2>/dev/null)
  [ -s "$list" ] && note "$c: disabled in $(wc -l <"$list") cgroup2 subtree_control file(s) for the run"
  return 0
}

# v2_restore C: enables C again where v2_disable disabled it, top down.
v2_restore() {
  local c=$1 f rc=0 list=$CGROUP2_SAVED/v2-subtree-$1
  [ -s "$list" ] || return 0
  while IFS= read -r f; do
    [ -e "$f" ] || continue  # its cgroup was removed meanwhile
    echo "+$c" >"$f" 2>/dev/null || { note "$c: cannot enable it again in $f"; rc=1; }
  done < <(tac "$list")
  (( rc )) || { note "$c: enabled again in cgroup2 subtree_control as before"; rm -f "$list"; }
  return "$rc"
}
