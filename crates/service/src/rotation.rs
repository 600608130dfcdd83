//! Key rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand,
//! ListKeyRotations.
//!
//! Rotation adds a new material version and keeps every old one, so old ciphertexts still decrypt;
//! new encryptions use the newest version. Automatic rotation happens in `keyring` when it comes due.

use strongroom_types::{
    KeyMaterialId, KeyMaterialState, KeyRecord, KeySpec, Origin, RotationType, Timestamp,
};

use crate::authz::RequestFacts;
use crate::keyring::Forms;
use crate::pagination::{self, Page};
use crate::state::{self, OpClass};
use crate::{Caller, Error, Kms};

const DEFAULT_ROTATION_PERIOD_DAYS: u32 = 365;
/// The most on-demand rotations one key may have.
const MAX_ON_DEMAND_ROTATIONS: usize = 25;

/// GetKeyRotationStatus's result.
#[derive(Debug)]
pub struct RotationStatus {
    /// The key ARN.
    pub key_arn: String,
    /// Whether automatic rotation is on.
    pub enabled: bool,
    /// The period, while rotation is on.
    pub period_days: Option<u32>,
    /// The next automatic rotation, while rotation is on.
    pub next_rotation: Option<Timestamp>,
}

/// One entry of ListKeyRotations.
#[derive(Debug)]
pub struct RotationEntry {
    /// The key id.
    pub key_id: String,
    /// The material version.
    pub material_id: KeyMaterialId,
    /// Whether it is current.
    pub state: KeyMaterialState,
    /// When the version was created.
    pub rotation_date: Timestamp,
    /// How it came about; `None` for the key's first material.
    pub rotation_type: Option<RotationType>,
}

/// Which materials ListKeyRotations shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeKeyMaterial {
    /// Only versions made by rotation (the default).
    RotationsOnly,
    /// Every version, including the first.
    All,
}

fn check_rotatable(record: &KeyRecord) -> Result<(), Error> {
    if record.origin == Origin::External {
        return Err(Error::UnsupportedOperation(format!(
            "{} origin is EXTERNAL which is not valid for this operation.",
            record.arn()
        )));
    }
    if record.key_spec != KeySpec::SymmetricDefault || record.origin != Origin::AwsKms {
        return Err(Error::UnsupportedOperation(format!(
            "{} cannot be rotated: only symmetric encryption keys with key material from AWS_KMS rotate.",
            record.arn()
        )));
    }
    Ok(())
}

impl Kms {
    /// EnableKeyRotation: rotation every `period_days` (90 to 2560, 365 by default), the first one a
    /// period from now.
    pub async fn enable_key_rotation(
        &self,
        caller: &Caller,
        key_id: &str,
        period_days: Option<i64>,
    ) -> Result<(), Error> {
        let period = match period_days {
            None => DEFAULT_ROTATION_PERIOD_DAYS,
            Some(days @ 90..=2560) => days as u32,
            Some(days) => {
                return Err(Error::Validation(format!(
                    "1 validation error detected: Value '{days}' at 'rotationPeriodInDays' failed to satisfy \
                     constraint: Member must have value between 90 and 2560"
                )));
            }
        };
        let facts = RequestFacts {
            rotation_period_days: period_days,
            ..RequestFacts::default()
        };
        let next = self.clock.now().plus_days(period);
        self.refuse_on_replica(caller, key_id, "EnableKeyRotation")
            .await?;
        self.update_key(caller, key_id, "kms:EnableKeyRotation", facts, |record| {
            check_rotatable(record)?;
            state::check(record, OpClass::Rotation)?;
            record.rotation.enabled = true;
            record.rotation.period_days = Some(period);
            record.rotation.next = Some(next);
            Ok(())
        })
        .await
    }

    /// DisableKeyRotation.
    pub async fn disable_key_rotation(&self, caller: &Caller, key_id: &str) -> Result<(), Error> {
        self.refuse_on_replica(caller, key_id, "DisableKeyRotation")
            .await?;
        self.update_key(
            caller,
            key_id,
            "kms:DisableKeyRotation",
            RequestFacts::default(),
            |record| {
                check_rotatable(record)?;
                state::check(record, OpClass::Rotation)?;
                record.rotation.enabled = false;
                record.rotation.next = None;
                Ok(())
            },
        )
        .await
    }

    /// GetKeyRotationStatus.
    pub async fn key_rotation_status(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<RotationStatus, Error> {
        let live = self
            .resolve(caller, key_id, Forms::IdOrArnCrossAccount)
            .await?;
        self.authorize(
            caller,
            "kms:GetKeyRotationStatus",
            &live,
            RequestFacts::default(),
        )?;
        let record = &live.record;
        check_rotatable(record)?;
        // A multi-Region replica shows its primary's schedule.
        let rotation = self.shared_rotation(record).await?;
        Ok(RotationStatus {
            key_arn: record.arn(),
            enabled: rotation.enabled,
            period_days: rotation.period_days.filter(|_| rotation.enabled),
            next_rotation: rotation.next.filter(|_| rotation.enabled),
        })
    }

    /// RotateKeyOnDemand: a new material version now, at most 25 times per key. Returns the key id.
    pub async fn rotate_key_on_demand(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<String, Error> {
        let now = self.clock.now();
        self.refuse_on_replica(caller, key_id, "RotateKeyOnDemand")
            .await?;
        self.update_key(caller, key_id, "kms:RotateKeyOnDemand", RequestFacts::default(), |record| {
            check_rotatable(record)?;
            state::check(record, OpClass::Rotation)?;
            let on_demand = record
                .materials
                .iter()
                .filter(|material| material.rotation_type == Some(RotationType::OnDemand))
                .count();
            if on_demand >= MAX_ON_DEMAND_ROTATIONS {
                return Err(Error::LimitExceeded(format!(
                    "{} has been rotated on demand {MAX_ON_DEMAND_ROTATIONS} times, the most a key may be.",
                    record.arn()
                )));
            }
            self.add_material(record, Some(RotationType::OnDemand), now)?;
            record.rotation.on_demand_started = Some(now);
            Ok(record.key_id.as_str().to_owned())
        })
        .await
    }

    /// ListKeyRotations: the key's material versions, oldest first.
    pub async fn list_key_rotations(
        &self,
        caller: &Caller,
        key_id: &str,
        include: IncludeKeyMaterial,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<RotationEntry>, Error> {
        let limit = pagination::limit(limit, 100, 1000)?;
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        self.authorize(
            caller,
            "kms:ListKeyRotations",
            &live,
            RequestFacts::default(),
        )?;
        let record = &live.record;
        check_rotatable(record)?;
        let last = record.materials.len().saturating_sub(1);
        let entries: Vec<RotationEntry> = record
            .materials
            .iter()
            .enumerate()
            .filter(|(_, material)| {
                include == IncludeKeyMaterial::All || material.rotation_type.is_some()
            })
            .map(|(index, material)| RotationEntry {
                key_id: record.key_id.as_str().to_owned(),
                material_id: material.id,
                state: if index == last {
                    KeyMaterialState::Current
                } else {
                    KeyMaterialState::NonCurrent
                },
                rotation_date: material.created,
                rotation_type: material.rotation_type,
            })
            .collect();
        let start = match marker {
            None => 0,
            Some(marker) => {
                let after = pagination::decode(marker)?;
                match entries
                    .iter()
                    .position(|entry| entry.material_id.to_hex() == after)
                {
                    Some(index) => index + 1,
                    None => {
                        return Err(Error::InvalidMarker(format!(
                            "Marker '{marker}' is not valid for this key"
                        )));
                    }
                }
            }
        };
        let items = entries.into_iter().skip(start).take(limit + 1).collect();
        Ok(pagination::page(items, limit, |entry: &RotationEntry| {
            entry.material_id.to_hex()
        }))
    }
}
