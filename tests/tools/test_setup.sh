#!/usr/bin/env bash
# scripts/setup's install path, without installing anything: apt-get,
# dpkg-query and update-rc.d are stubs, and /usr/sbin is a scratch folder in
# a private mount namespace, so the system's policy-rc.d is never touched.
# Checks that while apt-get installs, policy-rc.d refuses to start services;
# that the admin's policy-rc.d comes back afterwards (also after a failed
# install, and after a run killed mid-install); and that a freshly installed
# nginx is disabled while one installed before is left alone.
#
# Usage: tests/tools/test_setup.sh REPO_ROOT
# Exits 77 (skip) when not root or without mount namespaces (unshare -m).
set -euo pipefail

root="$(cd "${1:?usage: test_setup.sh REPO_ROOT}" && pwd)"
fail() { echo "test_setup: FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ] || [ ! -d /etc/init.d ] || ! unshare -m true 2>/dev/null; then
  echo "test_setup: SKIP: needs root, /etc/init.d and unshare -m"
  exit 77
fi

work="$(mktemp -d /tmp/pixpool-test-setup.XXXXXX)"
trap 'rm -rf "$work"' EXIT

admin_policy=$'#!/bin/sh\n# the admin\'s policy\nexit 0'

# scenario NAME: runs scripts/setup test in a sandbox; results in $work/NAME/.
#   S_POLICY  start state: none, admin (the admin's policy-rc.d) or crashed
#             (ours in place, the admin's saved: a run killed mid-install)
#   S_NGINX_BEFORE=1: nginx-common was installed before
#   S_APT_FAILS=1: apt-get install fails
scenario() {
  local t="$work/$1"
  mkdir -p "$t/stubs" "$t/sbin" "$t/init.d"
  # nginx-common's init script, which setup disables on a fresh install.
  printf '#!/bin/sh\nexit 0\n' >"$t/init.d/nginx"
  case "$S_POLICY" in
    admin) echo "$admin_policy" >"$t/sbin/policy-rc.d" ;;
    crashed)
      echo "$admin_policy" >"$t/sbin/policy-rc.d.pixpool-saved"
      printf '#!/bin/sh\n# pixpool scripts/setup: no service starts while it installs packages\nexit 101\n' \
        >"$t/sbin/policy-rc.d" ;;
  esac
  [ "${S_NGINX_BEFORE:-0}" = 1 ] && touch "$t/nginx-common-before"
  # Installed: everything but nginx (and nginx-common unless it was before),
  # until the stub apt-get has "installed" them.
  cat >"$t/stubs/dpkg-query" <<EOF
#!/bin/sh
for last; do :; done
case "\$last" in
  nginx) [ -e "$t/installed" ] || exit 1 ;;
  nginx-common) [ -e "$t/installed" ] || [ -e "$t/nginx-common-before" ] || exit 1 ;;
esac
printf 'install ok installed'
EOF
  cat >"$t/stubs/apt-get" <<EOF
#!/bin/sh
echo "apt-get \$*" >>"$t/calls"
case " \$* " in
  *" install "*)
    cp /usr/sbin/policy-rc.d "$t/policy-during-install"
    /usr/sbin/policy-rc.d nginx start; echo "\$?" >"$t/policy-start-rc"
    [ "${S_APT_FAILS:-0}" = 1 ] && exit 100
    touch "$t/installed" ;;
esac
exit 0
EOF
  printf '#!/bin/sh\necho "update-rc.d $*" >>"%s/calls"\n' "$t" >"$t/stubs/update-rc.d"
  chmod 755 "$t/stubs/"* "$t/init.d/nginx" "$t/sbin/"* 2>/dev/null || true
  local rc=0
  unshare -m bash -c '
    mount --make-rprivate / && mount --bind "$1/sbin" /usr/sbin \
      && mount --bind "$1/init.d" /etc/init.d || exit 99
    PATH="$1/stubs:$PATH" "$2/scripts/setup" test' _ "$t" "$root" >"$t/out.log" 2>&1 || rc=$?
  echo "$rc" >"$t/rc"
}

policy_after() { cat "$work/$1/sbin/policy-rc.d" 2>/dev/null || echo "(none)"; }
check_refused_during_install() {
  [ "$(cat "$work/$1/policy-start-rc" 2>/dev/null)" = 101 ] \
    || fail "$1: policy-rc.d did not refuse 'nginx start' during apt-get install"
  [ ! -e "$work/$1/sbin/policy-rc.d.pixpool-saved" ] || fail "$1: the saved policy-rc.d was left behind"
}

S_POLICY="admin" scenario admin
[ "$(cat "$work/admin/rc")" = 0 ] || { cat "$work/admin/out.log"; fail "admin: setup failed"; }
check_refused_during_install admin
[ "$(policy_after admin)" = "$admin_policy" ] || fail "admin: the admin's policy-rc.d was not restored"
grep -qx "update-rc.d nginx disable" "$work/admin/calls" || fail "admin: the new nginx was not disabled"

S_POLICY="none" scenario none
[ "$(cat "$work/none/rc")" = 0 ] || { cat "$work/none/out.log"; fail "none: setup failed"; }
check_refused_during_install none
[ "$(policy_after none)" = "(none)" ] || fail "none: a policy-rc.d was left behind"

S_POLICY="crashed" scenario crashed
[ "$(cat "$work/crashed/rc")" = 0 ] || { cat "$work/crashed/out.log"; fail "crashed: setup failed"; }
check_refused_during_install crashed
[ "$(policy_after crashed)" = "$admin_policy" ] || fail "crashed: the admin's policy-rc.d was not restored"

S_POLICY="admin" S_APT_FAILS=1 scenario aptfails
[ "$(cat "$work/aptfails/rc")" != 0 ] || fail "aptfails: setup succeeded although apt-get failed"
check_refused_during_install aptfails
[ "$(policy_after aptfails)" = "$admin_policy" ] || fail "aptfails: the admin's policy-rc.d was not restored"

S_POLICY="admin" S_NGINX_BEFORE=1 scenario nginx-before
[ "$(cat "$work/nginx-before/rc")" = 0 ] || { cat "$work/nginx-before/out.log"; fail "nginx-before: setup failed"; }
! grep -q "update-rc.d" "$work/nginx-before/calls" || fail "nginx-before: the admin's nginx service was changed"

# Nothing missing: no apt-get at all (no network needed).
mkdir -p "$work/present/stubs"
printf '#!/bin/sh\nprintf "install ok installed"\n' >"$work/present/stubs/dpkg-query"
printf '#!/bin/sh\necho called >"%s/apt-called"\n' "$work/present" >"$work/present/stubs/apt-get"
chmod 755 "$work/present/stubs/"*
PATH="$work/present/stubs:$PATH" "$root/scripts/setup" test >"$work/present/out.log" 2>&1 \
  || fail "all present: setup failed"
[ ! -e "$work/present/apt-called" ] || fail "all present: apt-get was called"

echo "test_setup: OK"
