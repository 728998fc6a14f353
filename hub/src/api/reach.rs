//! Where the person lives and how to reach them: `SetResidence`, `SetAccessibility`,
//! `GetAccessibility`. The hub keeps a commune's code and the channels the person states,
//! never an address, a phone number or an e-mail: a channel names the partner that holds
//! them.

use super::{Api, Call, convert, request_id};
use crate::domain::accessibility::{self, Channel, ChannelKind, Profile};
use crate::domain::commune::{Commune, Residence};
use crate::domain::ids::PartnerId;
use crate::domain::{DataCategory, Flag};
use crate::error::{Error, Result, Violations};
use crate::policy::Subject;
use relais_proto::v1 as pb;

/// At most this many channels.
const MOST_CHANNELS: usize = 8;

fn channel_from_pb(c: i32) -> std::result::Result<ChannelKind, crate::error::Invalid> {
    use pb::Channel as C;
    match C::try_from(c) {
        Ok(C::Telephone) => Ok(ChannelKind::Telephone),
        Ok(C::Courrier) => Ok(ChannelKind::Courrier),
        Ok(C::Sms) => Ok(ChannelKind::Sms),
        Ok(C::Bus) => Ok(ChannelKind::Bus),
        Ok(C::Mairie) => Ok(ChannelKind::Mairie),
        Ok(C::Domicile) => Ok(ChannelKind::Domicile),
        Ok(C::Mediateur) => Ok(ChannelKind::Mediateur),
        Ok(C::Proche) => Ok(ChannelKind::Proche),
        Ok(C::Unspecified) | Err(_) => Err(crate::error::Invalid::new(
            "required: telephone, courrier, sms, bus, mairie, domicile, mediateur or proche",
        )),
    }
}

fn channel_to_pb(c: ChannelKind) -> pb::Channel {
    use pb::Channel as C;
    match c {
        ChannelKind::Telephone => C::Telephone,
        ChannelKind::Courrier => C::Courrier,
        ChannelKind::Sms => C::Sms,
        ChannelKind::Bus => C::Bus,
        ChannelKind::Mairie => C::Mairie,
        ChannelKind::Domicile => C::Domicile,
        ChannelKind::Mediateur => C::Mediateur,
        ChannelKind::Proche => C::Proche,
    }
}

impl Api {
    /// A profile as said to a reader: each channel with the partner to go through, by name.
    pub(crate) async fn profile_to_pb(&self, p: &Profile) -> Result<pb::AccessibilityProfile> {
        let mut channels = Vec::new();
        let mut names = std::collections::HashMap::new();
        for c in &p.channels {
            let mut label = c.kind.label_fr().to_string();
            if let Some(via) = &c.via {
                let name = self.partner_name(&mut names, via).await?;
                label.push_str(&format!(", joindre via {name}"));
            }
            if !c.note.is_empty() {
                label.push_str(&format!(" ({})", c.note));
            }
            channels.push(pb::ContactChannel {
                channel: channel_to_pb(c.kind).into(),
                via: c.via.as_ref().map(ToString::to_string).unwrap_or_default(),
                note: c.note.clone(),
                label,
            });
        }
        Ok(pb::AccessibilityProfile {
            channels,
            interpreter: p.interpreter.clone().unwrap_or_default(),
            large_print: p.large_print,
            easy_read: p.easy_read,
            best_times: p.best_times.clone(),
            recorded_by: p.recorded_by.to_string(),
            recorded_at: convert::timestamp(p.recorded_at),
            version: p.version,
        })
    }

    pub(crate) async fn set_residence(
        &self,
        call: &Call,
        req: pb::SetResidenceRequest,
    ) -> Result<pb::SetResidenceResponse> {
        let mut v = Violations::new();
        let commune = v.field("commune", Commune::parse(&req.commune));
        let request_id = request_id(&req.request_id, &mut v);
        v.finish()?;
        let (Some(commune), Some(request_id)) = (commune, request_id) else {
            return Err(Error::Internal("validated fields missing".into()));
        };
        let facts = self.person_ref(call, "person", req.person.as_ref()).await?;
        let person = facts.person;
        let decision = self.may_write(call, &facts, Subject::category(DataCategory::Identity))?;
        let mut entry = call.write_entry(Some(person), &[DataCategory::Identity], Some(&decision));
        entry.detail = "commune of residence recorded".into();
        let meta = call.meta(request_id).audited(entry);
        let residence = self
            .store
            .set_residence(
                person,
                Residence {
                    commune,
                    partner: call.id().clone(),
                    recorded_at: call.at,
                },
                &meta,
            )
            .await?;
        Ok(pb::SetResidenceResponse {
            commune_name: residence.commune.name().unwrap_or_default().to_string(),
            commune: residence.commune.to_string(),
        })
    }

    pub(crate) async fn set_accessibility(
        &self,
        call: &Call,
        req: pb::SetAccessibilityRequest,
    ) -> Result<pb::SetAccessibilityResponse> {
        let mut v = Violations::new();
        let request_id = request_id(&req.request_id, &mut v);
        let Some(given) = req.profile.as_ref() else {
            v.push(
                "profile",
                "required: the channels and accommodations the person states",
            );
            v.finish()?;
            return Err(Error::Internal("validated fields missing".into()));
        };
        if given.channels.len() > MOST_CHANNELS {
            v.push(
                "profile.channels",
                format!("at most {MOST_CHANNELS}, in the person's order of preference"),
            );
        }
        let mut channels = Vec::new();
        for (i, c) in given.channels.iter().enumerate().take(MOST_CHANNELS) {
            let field = format!("profile.channels[{i}]");
            let kind = v.field(&format!("{field}.channel"), channel_from_pb(c.channel));
            let note = v.field(
                &format!("{field}.note"),
                accessibility::no_contact_details(&c.note, 120),
            );
            let via = if c.via.is_empty() {
                if kind.is_some_and(ChannelKind::needs_holder) {
                    v.push(
                        format!("{field}.via"),
                        "required: the partner that holds the contact details (the hub keeps none)",
                    );
                }
                None
            } else {
                match PartnerId::parse(&c.via) {
                    Ok(id) => match self.store.get_partner(&id).await? {
                        Some(_) => Some(id),
                        None => {
                            v.push(format!("{field}.via"), format!("no partner `{id}`"));
                            None
                        }
                    },
                    Err(e) => {
                        v.push(format!("{field}.via"), e.to_string());
                        None
                    }
                }
            };
            if let (Some(kind), Some(note)) = (kind, note) {
                if channels
                    .iter()
                    .any(|c: &Channel| c.kind == kind && c.via == via)
                {
                    v.push(field.clone(), "listed twice");
                }
                channels.push(Channel { kind, via, note });
            }
        }
        let interpreter = v.field(
            "profile.interpreter",
            accessibility::no_contact_details(&given.interpreter, 40),
        );
        let best_times = v.field(
            "profile.best_times",
            accessibility::no_contact_details(&given.best_times, 200),
        );
        v.finish()?;
        let (Some(interpreter), Some(best_times), Some(request_id)) =
            (interpreter, best_times, request_id)
        else {
            return Err(Error::Internal("validated fields missing".into()));
        };
        let facts = self.person_ref(call, "person", req.person.as_ref()).await?;
        let person = facts.person;
        let decision =
            self.may_write(call, &facts, Subject::category(DataCategory::Accessibility))?;
        let mut entry = call.write_entry(
            Some(person),
            &[DataCategory::Accessibility],
            Some(&decision),
        );
        entry.detail = "how to reach the person recorded".into();
        let meta = call.meta(request_id).audited(entry);
        let profile = self
            .store
            .set_accessibility(
                person,
                Profile {
                    channels,
                    interpreter: (!interpreter.is_empty()).then_some(interpreter),
                    large_print: given.large_print,
                    easy_read: given.easy_read,
                    best_times,
                    recorded_by: call.id().clone(),
                    recorded_at: call.at,
                    version: 0,
                },
                &meta,
            )
            .await?;
        Ok(pb::SetAccessibilityResponse {
            profile: Some(self.profile_to_pb(&profile).await?),
        })
    }

    pub(crate) async fn get_accessibility(
        &self,
        call: &Call,
        req: pb::GetAccessibilityRequest,
    ) -> Result<pb::GetAccessibilityResponse> {
        let facts = self.person_ref(call, "person", req.person.as_ref()).await?;
        let person = facts.person;
        let today = call.at.day();
        let profile = self.store.accessibility(person).await?;
        let flags = self.store.list_flags(person, false, None, 500).await?;
        let mut access = self.access(call, facts);
        let profile = profile.filter(|p| access.accessibility(p));
        // The advice comes from the difficulties the caller may read, and only those.
        let flags: Vec<&Flag> = flags
            .iter()
            .filter(|f| f.current(today) && access.flag(f))
            .collect();
        let withheld = access
            .record(
                &self.store,
                "read:GetAccessibility".into(),
                "how to reach the person".into(),
            )
            .await?;
        let codes: Vec<_> = flags
            .into_iter()
            .filter(|f| withheld.keeps(*f))
            .map(|f| f.code)
            .collect();
        let statements = accessibility::statements(&codes)
            .into_iter()
            .map(|s| pb::AccessibilityStatement {
                text: s.text.to_string(),
                code: s.code.code().to_string(),
            })
            .collect();
        let profile = match profile {
            Some(p) => Some(self.profile_to_pb(&p).await?),
            None => None,
        };
        Ok(pb::GetAccessibilityResponse {
            profile,
            statements,
        })
    }
}
