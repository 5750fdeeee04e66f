//! The process's open-file limit (`RLIMIT_NOFILE`): raised at start from the soft limit to
//! the hard one, and read to size the HTTP connection budget.
//!
//! systemd starts services with a soft limit of 1024 (and a much higher hard one) so that
//! old `select()` code keeps working; this daemon uses no `select()`, so it takes what the
//! hard limit allows. Every connection, history file and Studio request is a descriptor: a
//! limit that idle clients can exhaust makes runs fail with "Too many open files".

/// Raises the soft open-file limit to the hard one, when it can, and returns the soft limit
/// now in force. Unknown (the call failed): the common 1024.
pub(super) fn raise_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot read the open-file limit; assuming 1024"
        );
        return 1024;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = limit.rlim_max;
        } else {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                soft = before,
                hard = limit.rlim_max,
                "cannot raise the open-file limit to the hard one"
            );
        }
    }
    tracing::info!(
        soft = limit.rlim_cur,
        before,
        hard = limit.rlim_max,
        "open-file limit"
    );
    limit.rlim_cur
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let now = super::raise_limit();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!(now, limit.rlim_cur);
        assert_eq!(limit.rlim_cur, limit.rlim_max);
    }
}
