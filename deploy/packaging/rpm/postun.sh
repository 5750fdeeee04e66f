# %postun of the studio-role-sync .rpm. Erase keeps the history (/var/lib/studio-role-sync),
# the token, and edited config files (as .rpmsave); RPM has no purge: delete them by hand.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -ge 1 ]; then
    systemctl try-restart studio-role-sync.service >/dev/null 2>&1 || :
fi
