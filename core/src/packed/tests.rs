use super::*;
use crate::name::key_of;
use crate::wire::{decode_records, encode_records};

fn rec(name: &str, ttl: u32, rtype: RecordType, data: &str) -> Record {
    Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        ttl,
        RData::try_from_str(rtype, data).unwrap(),
    )
}

fn owner_of(records: &[Record]) -> Owner {
    let key = key_of(&records[0].name);
    let mut owner = Owner::empty(&key);
    for record in records {
        let rtype = record.record_type();
        let set: Vec<Record> = records
            .iter()
            .filter(|r| r.record_type() == rtype)
            .cloned()
            .collect();
        owner = owner.with_rrset(&PackedRRset::pack(rtype, &set).unwrap());
    }
    owner
}

#[test]
fn records_come_back_as_the_wire_form_decodes_them() {
    let name = "host.example.internal.";
    let records = [
        rec(name, 60, RecordType::MX, "20 MX2.Example.Internal."),
        rec(name, 60, RecordType::MX, "10 mx1.example.internal."),
        rec(name, 300, RecordType::A, "10.0.0.7"),
        rec(name, 300, RecordType::AAAA, "fd00::7"),
        rec(
            name,
            120,
            RecordType::TXT,
            "\"v=spf1 -all\" \"two strings\"",
        ),
        rec(name, 120, RecordType::SRV, "0 5 5060 Sip.example.internal."),
        rec(name, 120, RecordType::CAA, "0 issue \"ca.example.net\""),
        rec(
            name,
            120,
            RecordType::SSHFP,
            "1 1 dd465c09cfa51fb45020cc83316fff21b9ec74ac",
        ),
    ];
    let owner = owner_of(&records);
    assert_eq!(owner.key(), &*key_of(&records[0].name));
    let types: Vec<RecordType> = owner.rrsets().map(|set| set.record_type()).collect();
    assert_eq!(
        types,
        [
            RecordType::A,
            RecordType::MX,
            RecordType::TXT,
            RecordType::AAAA,
            RecordType::SRV,
            RecordType::SSHFP,
            RecordType::CAA
        ],
        "type order"
    );
    for rrset in owner.rrsets() {
        let originals: Vec<Record> = records
            .iter()
            .filter(|r| r.record_type() == rrset.record_type())
            .cloned()
            .collect();
        // What a replica decodes from the change bytes is what the model hands out.
        let expected = decode_records(&encode_records(&originals).unwrap()).unwrap();
        let stored: Vec<Record> = rrset.records().collect();
        assert_eq!(stored, expected, "{}", rrset.record_type());
        assert_eq!(rrset.len(), originals.len());
        assert_eq!(
            rrset.to_wire(),
            encode_records(&originals).unwrap(),
            "{}",
            rrset.record_type()
        );
        let one = rrset.rdata().next().unwrap();
        assert_eq!(
            rrset.record_wire(one),
            encode_records(&originals[..1]).unwrap()
        );
    }
    let mx = owner.rrset(RecordType::MX).unwrap();
    let targets: Vec<String> = mx.records().map(|r| r.data.to_string()).collect();
    assert_eq!(
        targets,
        ["20 mx2.example.internal.", "10 mx1.example.internal."],
        "canonical form"
    );
}

#[test]
fn an_rrset_is_replaced_or_removed_and_the_owner_keeps_its_name() {
    let name = "www.example.internal.";
    let owner = owner_of(&[
        rec(name, 300, RecordType::A, "10.0.0.1"),
        rec(name, 300, RecordType::AAAA, "fd00::1"),
    ]);
    let other =
        PackedRRset::pack(RecordType::A, &[rec(name, 60, RecordType::A, "10.0.0.2")]).unwrap();
    let replaced = owner.with_rrset(&other);
    assert_eq!(replaced, owner, "same name, so the same set entry");
    assert!(!replaced.same_records(&owner));
    let a: Vec<String> = replaced
        .rrset(RecordType::A)
        .unwrap()
        .records()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(a, ["www.example.internal. 60 IN A 10.0.0.2"]);
    let no_a = PackedRRset::pack(RecordType::A, &[]).unwrap();
    let no_aaaa = PackedRRset::pack(RecordType::AAAA, &[]).unwrap();
    let without = replaced.with_rrset(&no_a).with_rrset(&no_aaaa);
    assert!(without.is_empty());
    assert_eq!(without.name(), Name::from_ascii(name).unwrap());
    assert!(Owner::empty(&key_of(&Name::from_ascii(name).unwrap())).same_records(&without));
}

#[test]
fn owners_sort_in_canonical_order() {
    let mut owners: Vec<Owner> = ["b.example.", "example.", "a.b.example.", "c.example."]
        .iter()
        .map(|name| Owner::empty(&key_of(&Name::from_ascii(name).unwrap())))
        .collect();
    owners.sort();
    let names: Vec<String> = owners.iter().map(|owner| owner.name().to_ascii()).collect();
    assert_eq!(
        names,
        ["example.", "b.example.", "a.b.example.", "c.example."]
    );
}

#[test]
fn records_of_another_type_or_class_are_refused() {
    let a = rec("x.example.", 60, RecordType::A, "10.0.0.1");
    let err = PackedRRset::pack(RecordType::AAAA, std::slice::from_ref(&a)).unwrap_err();
    assert!(
        err.to_string().contains("not of the RRset's type AAAA"),
        "{err}"
    );
    let mut chaos = a;
    chaos.dns_class = DNSClass::CH;
    let err = PackedRRset::pack(RecordType::A, &[chaos]).unwrap_err();
    assert!(err.to_string().contains("class IN"), "{err}");
}
