//! Tags on keys: TagResource, UntagResource, ListResourceTags.

use strongroom_types::Tag;

use crate::authz::RequestFacts;
use crate::keyring::Forms;
use crate::keys::dedup_tags;
use crate::pagination::{self, Page};
use crate::state::{self, OpClass};
use crate::{Caller, Error, Kms};

/// The most tags one key may carry.
const MAX_TAGS_PER_KEY: usize = 50;

impl Kms {
    /// TagResource: adds tags, replacing the values of keys already present.
    pub async fn tag_resource(
        &self,
        caller: &Caller,
        key_id: &str,
        tags: Vec<Tag>,
    ) -> Result<(), Error> {
        // aws:RequestTag/* and aws:TagKeys describe the tags being added.
        let requested = tags.clone();
        self.update_key(
            caller,
            key_id,
            "kms:TagResource",
            RequestFacts {
                request_tags: Some(&requested),
                ..RequestFacts::default()
            },
            |record| {
                state::check(record, OpClass::NotPendingDeletion)?;
                check_new_tags(&record.tags, &tags)?;
                let mut merged = std::mem::take(&mut record.tags);
                merged.extend(tags);
                record.tags = dedup_tags(merged);
                Ok(())
            },
        )
        .await
    }

    /// UntagResource: removes tags by key; keys that are not present are ignored, as in AWS.
    pub async fn untag_resource(
        &self,
        caller: &Caller,
        key_id: &str,
        tag_keys: Vec<String>,
    ) -> Result<(), Error> {
        self.update_key(
            caller,
            key_id,
            "kms:UntagResource",
            RequestFacts::default(),
            |record| {
                state::check(record, OpClass::NotPendingDeletion)?;
                for key in &tag_keys {
                    check_tag_key(key)?;
                }
                record.tags.retain(|tag| !tag_keys.contains(&tag.key));
                Ok(())
            },
        )
        .await
    }

    /// ListResourceTags, a page at a time (1 to 50 per page).
    pub async fn list_resource_tags(
        &self,
        caller: &Caller,
        key_id: &str,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<Tag>, Error> {
        let limit = pagination::limit(limit, 50, 50)?;
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        self.authorize(
            caller,
            "kms:ListResourceTags",
            &live,
            RequestFacts::default(),
        )?;
        let tags = &live.record.tags;
        let start = match marker {
            None => 0,
            Some(marker) => {
                let after = pagination::decode(marker)?;
                match tags.iter().position(|tag| tag.key == after) {
                    Some(index) => index + 1,
                    None => {
                        return Err(Error::InvalidMarker(format!(
                            "Marker '{marker}' is not valid for this key's tags"
                        )));
                    }
                }
            }
        };
        let items = tags.iter().skip(start).take(limit + 1).cloned().collect();
        Ok(pagination::page(items, limit, |tag: &Tag| tag.key.clone()))
    }
}

fn check_tag_key(key: &str) -> Result<(), Error> {
    if key.starts_with("aws:") {
        return Err(Error::Tag(format!(
            "Tag key '{key}' is not valid: tag keys beginning with 'aws:' are reserved."
        )));
    }
    Ok(())
}

/// Checks tags about to be added to a key that has `existing` tags.
pub(crate) fn check_new_tags(existing: &[Tag], new: &[Tag]) -> Result<(), Error> {
    for tag in new {
        check_tag_key(&tag.key)?;
    }
    let mut keys: Vec<&str> = existing.iter().map(|tag| tag.key.as_str()).collect();
    for tag in new {
        if !keys.contains(&tag.key.as_str()) {
            keys.push(&tag.key);
        }
    }
    if keys.len() > MAX_TAGS_PER_KEY {
        return Err(Error::LimitExceeded(format!(
            "A key can have at most {MAX_TAGS_PER_KEY} tags; this request would give it {}.",
            keys.len()
        )));
    }
    Ok(())
}
