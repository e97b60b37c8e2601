//! Claims as JSON, for people and other tools.

use crate::evidence::{Evidence, Format};
use crate::hex;
use serde_json::{json, Value};

/// The evidence's claims, byte strings in hex.
pub fn claims(ev: &Evidence) -> Value {
    let p = &ev.platform;
    let r = &ev.realm;
    let sw: Vec<Value> = p
        .sw_components
        .iter()
        .map(|s| {
            json!({
                "component-type": s.kind,
                "measurement-value": hex::encode(&s.measurement),
                "version": s.version,
                "signer-id": hex::encode(&s.signer_id),
                "hash-algo-id": s.hash_algo,
            })
        })
        .collect();
    json!({
        "format": match ev.format {
            Format::Cmw => "CMW collection (tag 907)",
            Format::Legacy => "legacy collection (tag 399)",
        },
        "platform": {
            "profile": p.profile,
            "challenge": hex::encode(&p.challenge),
            "client-id": p.client_id.map(|c| c.to_string()),
            "implementation-id": hex::encode(&p.implementation_id),
            "instance-id": hex::encode(&p.instance_id),
            "config": hex::encode(&p.config),
            "lifecycle": format!("{:#06x}", p.lifecycle),
            "sw-components": sw,
            "verification-service": p.verification_service,
            "hash-algo-id": p.hash_algo,
        },
        "realm": {
            "profile": r.profile,
            "challenge": hex::encode(&r.challenge),
            "instance-id": r.instance_id.as_deref().map(hex::encode),
            "personalization-value": hex::encode(&r.rpv),
            "public-key": hex::encode(&r.rak),
            "hash-algo-id": r.hash_algo.name(),
            "public-key-hash-algo-id": r.rak_hash_algo.name(),
            "mec-policy": r.mec_policy,
            "initial-measurement": hex::encode(&r.rim),
            "extensible-measurements": r.rems.iter().map(|m| hex::encode(m)).collect::<Vec<_>>(),
        },
    })
}
