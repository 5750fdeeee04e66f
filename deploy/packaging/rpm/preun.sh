# %preun of the studio-role-sync .rpm: on erase ($1 = 0), stop and disable the service. An
# upgrade ($1 = 1) leaves it running; %postun restarts it with the new binary.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now studio-role-sync.service >/dev/null 2>&1 || :
fi
