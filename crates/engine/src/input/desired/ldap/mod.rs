//! The LDAP source: the members of directory groups, each group granting its roles.
//!
//! A group is a DN (its `member` / `uniqueMember` DNs and `memberUid` names are read, and each
//! member's entry for its email) or a filter (every entry under `base_dn` matching it). With
//! `nested: expand` a member that is itself a group is read in turn, each group once; with
//! `nested: in_chain` Active Directory follows the chain itself (matching rule
//! 1.2.840.113556.1.4.1941) in one search. A member with no usable email is reported
//! (`no_email_in_directory`), never guessed; an email that breaks the roles-file rules is a
//! problem like a bad line. Any read that does not finish ([`directory`]) fails the source.

mod directory;

use super::{
    DesiredBuilder, DesiredError, DesiredState, GroupCount, Origin, SourceName, Unmatched,
};
use crate::config::{LdapMembers, LdapNested, LdapSourceConfig};
use crate::roles::ManagedRoles;
use directory::{Directory, Lookup};
use futures::StreamExt;
use ldap3::SearchEntry;
use std::collections::{HashSet, VecDeque};

/// Member entries read at once from one connection (LDAP multiplexes requests).
const LOOKUPS_IN_FLIGHT: usize = 32;

/// The most member entries one source reads: a bound on memory and time against a
/// directory that loops or answers without end.
pub(crate) const MAX_MEMBERS: usize = 2_000_000;

/// The AD matching rule that follows nested groups on the server.
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// "LDAP source (ldaps://ldap.myschool.edu, base dc=myschool,dc=edu)".
pub(crate) fn describe(config: &LdapSourceConfig) -> String {
    format!(
        "LDAP source ({}, base {})",
        config.url.as_str().trim_end_matches('/'),
        crate::email_address::shown(&config.base_dn)
    )
}

/// Binds, reads every group, and builds the desired state; also what each group held.
pub async fn load(
    config: &LdapSourceConfig,
    managed: &ManagedRoles,
) -> Result<(DesiredState, Vec<GroupCount>), DesiredError> {
    let place = describe(config);
    let unavailable = |message: String| DesiredError::Unavailable {
        place: place.clone(),
        message: format!("{message}; nothing was sent to Studio"),
    };
    let mut b = DesiredBuilder::new(managed, SourceName::new("ldap"));
    let mut unmatched = Vec::new();
    let read = read(config, &mut b, &mut unmatched);
    // The last resort, for a server that trickles: every operation has its own timeout too.
    let counts = match tokio::time::timeout(config.timeout * 2, read).await {
        Err(_) => {
            return Err(unavailable(format!(
                "the read did not finish within {} s",
                config.timeout.as_secs_f64() * 2.0
            )))
        }
        Ok(Err(message)) => return Err(unavailable(message)),
        Ok(Ok(counts)) => counts,
    };
    let mut state = b.finish(&place)?;
    state.unmatched = unmatched;
    Ok((state, counts))
}

async fn read(
    config: &LdapSourceConfig,
    b: &mut DesiredBuilder<'_>,
    unmatched: &mut Vec<Unmatched>,
) -> Result<Vec<GroupCount>, String> {
    let dir = Directory::open(config).await?;
    let mut counts = Vec::with_capacity(config.groups.len());
    let mut seen_unmatched = HashSet::new();
    for group in &config.groups {
        let members = match &group.members {
            LdapMembers::Filter(filter) => {
                search_members(&dir, config, &config.base_dn, filter).await?
            }
            LdapMembers::Dn(dn) => match config.nested {
                LdapNested::InChain => {
                    // A group that is not there must fail, not read as empty.
                    if let Lookup::Missing = dir.lookup(dn, &["1.1"]).await? {
                        return Err(missing_group(dn));
                    }
                    let filter = format!("(memberOf:{IN_CHAIN}:={})", ldap3::ldap_escape(dn));
                    search_members(&dir, config, &config.base_dn, &filter).await?
                }
                LdapNested::Off | LdapNested::Expand => group_members(&dir, config, dn).await?,
            },
        };
        let mut count = GroupCount {
            group: group.shown().to_string(),
            members: members.len(),
            without_email: 0,
        };
        let source = b.source().clone();
        for member in members {
            match member {
                Member::Email { who, email } => {
                    // The roles file's rules; an entry that breaks them has no usable email
                    // (reported with the others), as nothing in it may be guessed.
                    let email = match crate::email_address::check(&email) {
                        Ok(e) => e,
                        Err(why) => {
                            count.without_email += 1;
                            if seen_unmatched.insert(who.clone()) {
                                unmatched.push(Unmatched {
                                    member: escaped(&who),
                                    source: source.clone(),
                                    detail: format!(
                                        "its {} {} {why}",
                                        config.email_attribute,
                                        crate::email_address::shown(&email)
                                    ),
                                });
                            }
                            continue;
                        }
                    };
                    for role in group.roles.iter() {
                        b.add_grant(
                            Origin::Unknown,
                            email.clone(),
                            super::Grant::new(role, source.clone()),
                        );
                    }
                }
                Member::NoEmail { who, detail } => {
                    count.without_email += 1;
                    if seen_unmatched.insert(who.clone()) {
                        unmatched.push(Unmatched {
                            member: escaped(&who),
                            source: source.clone(),
                            detail: escaped(&detail),
                        });
                    }
                }
            }
        }
        counts.push(count);
    }
    dir.close().await;
    Ok(counts)
}

/// A member as read: an address, or why there is none.
enum Member {
    Email { who: String, email: String },
    NoEmail { who: String, detail: String },
}

/// The entries under `base` matching `filter`, with their emails.
async fn search_members(
    dir: &Directory,
    config: &LdapSourceConfig,
    base: &str,
    filter: &str,
) -> Result<Vec<Member>, String> {
    let mut out = Vec::new();
    let attribute = config.email_attribute.as_str();
    let mut too_many = false;
    dir.search(base, filter, &[attribute], |entry| {
        if out.len() >= MAX_MEMBERS {
            too_many = true;
            return;
        }
        out.push(member_of(entry, attribute));
    })
    .await?;
    if too_many {
        return Err(too_many_members());
    }
    Ok(out)
}

/// The members of the group at `dn`: its member DNs read one by one (several at a time),
/// groups among them followed when `nested: expand`.
async fn group_members(
    dir: &Directory,
    config: &LdapSourceConfig,
    dn: &str,
) -> Result<Vec<Member>, String> {
    let attribute = config.email_attribute.as_str();
    let attrs = [attribute, "member", "uniqueMember", "memberUid"];
    let group = match dir.lookup(dn, &attrs[1..]).await? {
        Lookup::Found(e) => e,
        Lookup::Missing => return Err(missing_group(dn)),
    };
    let mut groups_seen: HashSet<String> = HashSet::from([dn.to_ascii_lowercase()]);
    let mut members_seen: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<SearchEntry> = VecDeque::from([group]);
    let mut out = Vec::new();
    while let Some(group) = queue.pop_front() {
        let (dns, uids) = member_values(&group);
        for uid in uids {
            if !members_seen.insert(format!("uid={}", uid.to_ascii_lowercase())) {
                continue;
            }
            let filter = format!("(uid={})", ldap3::ldap_escape(&uid));
            let mut found = Vec::new();
            dir.search(&config.base_dn, &filter, &[attribute], |e| found.push(e))
                .await?;
            out.push(match found.len() {
                1 => member_of(found.pop().expect("one"), attribute),
                0 => Member::NoEmail {
                    who: format!("memberUid {uid}"),
                    detail: "no entry under base_dn has this uid".into(),
                },
                n => Member::NoEmail {
                    who: format!("memberUid {uid}"),
                    detail: format!("{n} entries under base_dn have this uid"),
                },
            });
        }
        let dns: Vec<String> = dns
            .into_iter()
            .filter(|d| members_seen.insert(d.to_ascii_lowercase()))
            .collect();
        if members_seen.len() > MAX_MEMBERS {
            return Err(too_many_members());
        }
        let mut lookups = futures::stream::iter(dns.into_iter().map(|d| async {
            let found = dir.lookup(&d, &attrs).await;
            (d, found)
        }))
        .buffered(LOOKUPS_IN_FLIGHT);
        while let Some((member_dn, found)) = lookups.next().await {
            let entry = match found? {
                Lookup::Found(e) => e,
                Lookup::Missing => {
                    out.push(Member::NoEmail {
                        who: member_dn,
                        detail: "the group lists a member with no entry in the directory".into(),
                    });
                    continue;
                }
            };
            let (sub_dns, sub_uids) = member_values(&entry);
            if !sub_dns.is_empty() || !sub_uids.is_empty() {
                // A group inside the group.
                if config.nested == LdapNested::Expand {
                    if groups_seen.insert(entry.dn.to_ascii_lowercase()) {
                        queue.push_back(entry);
                    }
                } else {
                    out.push(Member::NoEmail {
                        who: entry.dn,
                        detail: "a group inside the group: set nested: expand (or in_chain on \
                                 Active Directory) to read its members"
                            .into(),
                    });
                }
                continue;
            }
            out.push(member_of(entry, attribute));
        }
    }
    Ok(out)
}

/// The member DNs and `memberUid` names of a group entry.
fn member_values(entry: &SearchEntry) -> (Vec<String>, Vec<String>) {
    let mut dns = Vec::new();
    let mut uids = Vec::new();
    for (name, values) in &entry.attrs {
        if name.eq_ignore_ascii_case("member") {
            dns.extend(values.iter().cloned());
        } else if name.eq_ignore_ascii_case("uniqueMember") {
            // `uniqueMember` may carry an optional UID after the DN: `dn#'0101'B`.
            dns.extend(values.iter().map(|v| match v.rfind("#'") {
                Some(i) if v.ends_with("'B") => v[..i].to_string(),
                _ => v.clone(),
            }));
        } else if name.eq_ignore_ascii_case("memberUid") {
            uids.extend(values.iter().cloned());
        }
    }
    (dns, uids)
}

/// The email of an entry, or why it has none.
fn member_of(entry: SearchEntry, attribute: &str) -> Member {
    let values: Vec<&String> = entry
        .attrs
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(attribute))
        .flat_map(|(_, v)| v)
        .filter(|v| !v.trim().is_empty())
        .collect();
    match values.as_slice() {
        [one] => Member::Email {
            email: (*one).clone(),
            who: entry.dn,
        },
        [] => Member::NoEmail {
            who: entry.dn,
            detail: format!("the entry has no {attribute}"),
        },
        many => Member::NoEmail {
            who: entry.dn,
            detail: format!("the entry has {} values of {attribute}", many.len()),
        },
    }
}

fn missing_group(dn: &str) -> String {
    format!(
        "the group {} is not in the directory (check its dn)",
        shown(dn)
    )
}

fn too_many_members() -> String {
    format!("more than {MAX_MEMBERS} members: refusing to read further")
}

fn shown(text: &str) -> String {
    crate::email_address::shown(text)
}

/// Directory text as people read it: control and invisible characters escaped (so a DN can
/// never hide or draw a line of a plan), at most 300 characters.
fn escaped(text: &str) -> String {
    let shown = crate::email_address::escaped(text);
    match shown.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &shown[..cut]),
        None => shown.into_owned(),
    }
}
