# Shared by the maintainer scripts of the .deb and the scriptlets of the .rpm; build.sh pastes
# it into each one (a maintainer script must stand alone). Every path goes through $SRS_ROOT:
# dpkg sets DPKG_ROOT when it installs into another root without chroot (the throwaway root
# of deploy/packaging/verify.sh); it is empty on a real install and under rpm.
SRS_USER=studio-role-sync
SRS_ROOT="${DPKG_ROOT:-}"
SRS_ETC="$SRS_ROOT/etc/studio-role-sync"
SRS_STATE="$SRS_ROOT/var/lib/studio-role-sync"

# The passwd or group entry of NAME, from the target root's files when installing elsewhere.
srs_entry() {
    if [ -n "$SRS_ROOT" ]; then
        grep "^$2:" "$SRS_ROOT/etc/$1" || true
    else
        getent "$1" "$2" || true
    fi
}

# The system user and group, from the sysusers.d line; useradd where systemd-sysusers is
# missing (a container or chroot without systemd). An existing user is kept as it is.
srs_create_user() {
    if [ -n "$(srs_entry passwd "$SRS_USER")" ]; then
        return 0
    fi
    if command -v systemd-sysusers >/dev/null 2>&1; then
        printf '%s\n' '@SYSUSERS_LINE@' |
            systemd-sysusers ${SRS_ROOT:+--root="$SRS_ROOT"} \
                --replace=/usr/lib/sysusers.d/studio-role-sync.conf -
    else
        useradd --system --user-group --home-dir /var/lib/studio-role-sync --no-create-home \
            --shell /usr/sbin/nologin --comment "Canvas Studio role sync" \
            ${SRS_ROOT:+--prefix "$SRS_ROOT"} "$SRS_USER"
    fi
}

# The token file the unit hands to the service (LoadCredential=), created empty and root-only
# when missing: `validate` then names it ("the file named here is empty") until the admin
# writes the token. Never replaced, so an upgrade keeps the token.
srs_token_placeholder() {
    if [ ! -e "$SRS_ETC/token" ]; then
        (umask 077 && : >"$SRS_ETC/token")
        chown 0:0 "$SRS_ETC/token"
    fi
}

# The history folder, so admins can run commands before the first start; systemd keeps it
# right afterwards (StateDirectory=). Never removed here: upgrades and `remove` keep it.
srs_state_dir() {
    if [ ! -d "$SRS_STATE" ]; then
        uid=$(srs_entry passwd "$SRS_USER" | cut -d: -f3)
        gid=$(srs_entry group "$SRS_USER" | cut -d: -f3)
        install -d -m 0700 -o "$uid" -g "$gid" "$SRS_STATE"
    fi
}
