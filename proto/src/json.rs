//! Any message of the contract as JSON, by the canonical protobuf mapping (RFC 3339 times,
//! enum names, 64-bit integers as strings), with the `.proto` field names (`person_id`) and
//! every field present — what `--json` prints in the CLI, for scripts.

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use std::sync::OnceLock;

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::v1::FILE_DESCRIPTOR_SET)
            .expect("the package's own descriptor set decodes")
    })
}

/// `message` as a JSON value.
pub fn to_json<M: prost::Message + prost::Name>(message: &M) -> serde_json::Value {
    let Some(descriptor) = pool().get_message_by_name(&M::full_name()) else {
        return serde_json::Value::Null;
    };
    let mut dynamic = DynamicMessage::new(descriptor);
    if dynamic.merge(message.encode_to_vec().as_slice()).is_err() {
        return serde_json::Value::Null;
    }
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1 as pb;

    #[test]
    fn times_are_rfc3339_and_enums_their_names() {
        let p = pb::Partner {
            id: "mairie-aspet".into(),
            kind: pb::PartnerKind::Mairie as i32,
            created_at: Some(prost_types::Timestamp {
                seconds: 1_796_289_120,
                nanos: 0,
            }),
            ..Default::default()
        };
        let j = to_json(&p);
        assert_eq!(j["id"], "mairie-aspet");
        assert_eq!(j["kind"], "PARTNER_KIND_MAIRIE");
        assert_eq!(j["created_at"], "2026-12-03T09:12:00Z");
        assert_eq!(j["name"], "", "every field, defaults included");
    }
}
