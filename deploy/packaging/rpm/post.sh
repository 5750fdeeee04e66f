# %post of the studio-role-sync .rpm: an empty token file, the history folder, and on a first
# install ($1 = 1) the unit enabled, NOT started (it needs the token first).
@COMMON@

srs_token_placeholder
srs_state_dir
if [ "$1" -eq 1 ]; then
    systemctl --no-reload enable studio-role-sync.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
