# %pre of the studio-role-sync .rpm (build.sh pastes deploy/packaging/common.sh in at
# @COMMON@): the system user first, so rpm can give the config files its group.
@COMMON@

srs_create_user
