use super::*;

fn zone() -> Name {
    Name::from_ascii("site.internal.").unwrap()
}

fn listed(hosts: &Hosts) -> Vec<(String, Vec<String>)> {
    hosts
        .addresses
        .iter()
        .map(|(name, ips)| {
            (
                name.to_string(),
                ips.iter().map(ToString::to_string).collect(),
            )
        })
        .collect()
}

#[test]
fn a_hosts_file_gives_the_names_under_the_zone() {
    let text = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n\
                10.0.0.7 printer printer.site.internal # the office printer\n\
                10.0.0.8 nas.other.example\nfe80::1 linklocal\nnot-an-address host\n\
                2001:db8::8 NAS\n";
    let hosts = hosts_file(text, &zone());
    assert_eq!(
        listed(&hosts),
        [
            ("nas.site.internal.".into(), vec!["2001:db8::8".into()]),
            ("printer.site.internal.".into(), vec!["10.0.0.7".into()]),
        ]
    );
    assert_eq!(
        hosts.skipped, 2,
        "the line without an address, the name outside"
    );
}

#[test]
fn dnsmasq_leases_expire() {
    let text = "1700000100 aa:bb:cc:dd:ee:01 10.0.0.50 laptop 01:aa:bb:cc:dd:ee:01\n\
                1700000000 aa:bb:cc:dd:ee:02 10.0.0.51 phone *\n\
                0 aa:bb:cc:dd:ee:03 10.0.0.52 printer *\n\
                1699999999 aa:bb:cc:dd:ee:04 10.0.0.53 * *\n\
                duid 00:01:00:01:2c:4f:00:00:aa:bb:cc:dd:ee:ff\n\
                1700000100 1234 2001:db8::50 laptop *\n\
                garbage\n";
    let hosts = dnsmasq_leases(text, &zone(), 1_700_000_000);
    assert_eq!(
        listed(&hosts),
        [
            (
                "laptop.site.internal.".into(),
                vec!["10.0.0.50".into(), "2001:db8::50".into()]
            ),
            ("printer.site.internal.".into(), vec!["10.0.0.52".into()]),
        ]
    );
    assert_eq!(hosts.skipped, 1);
}

#[test]
fn kea_leases_take_the_last_row_of_an_address() {
    let text = "address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context,pool_id\n\
                10.0.0.60,aa:01,,3600,1700003600,1,0,0,desk.site.internal.,0,,0\n\
                10.0.0.61,aa:02,,3600,1700003600,1,0,0,cam,0,,0\n\
                10.0.0.61,aa:02,,0,1700000000,1,0,0,cam,0,,0\n\
                10.0.0.62,aa:03,,3600,1700003600,1,0,0,declined,1,,0\n\
                10.0.0.63,aa:04,,3600,1699990000,1,0,0,old,0,,0\n";
    let hosts = kea_leases(text, &zone(), 1_700_000_000);
    assert_eq!(
        listed(&hosts),
        [("desk.site.internal.".into(), vec!["10.0.0.60".into()])]
    );
}
