//! Tags of clusters and backups: `TagResource`, `UntagResource`, `ListTags`.

use strongroom_types::{Namespace, Tag};

use crate::clusters::paginate;
use crate::error::Error;
use crate::{ControlPlane, Page, ids};

/// A resource has at most this many tags.
const MAX_TAGS: usize = 50;
/// `ListTags` pages hold at most this many tags.
const MAX_TAGS_PER_PAGE: usize = 100;

/// Refuses tags AWS reserves for itself.
pub(crate) fn check_new_tags(tags: &[Tag]) -> Result<(), Error> {
    for tag in tags {
        if tag.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(Error::Tag(format!(
                "Tag key '{}' starts with 'aws:', which is reserved for AWS.",
                tag.key
            )));
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(Error::ResourceLimitExceeded(format!(
            "A resource can have at most {MAX_TAGS} tags; the request has {}.",
            tags.len()
        )));
    }
    Ok(())
}

/// `existing` with `added` applied: a key already present takes the new value in place, new keys
/// go at the end in request order, and the last value given for a repeated key wins.
pub(crate) fn merge(existing: &[Tag], added: &[Tag]) -> Vec<Tag> {
    let mut merged = existing.to_vec();
    for tag in added {
        match merged.iter_mut().find(|old| old.key == tag.key) {
            Some(old) => old.value = tag.value.clone(),
            None => merged.push(tag.clone()),
        }
    }
    merged
}

impl ControlPlane {
    /// `TagResource`: adds or replaces tags on a cluster or a backup.
    pub async fn tag_resource(
        &self,
        namespace: &Namespace,
        resource_id: &str,
        tags: &[Tag],
    ) -> Result<(), Error> {
        check_new_tags(tags)?;
        let _admin = self.admin.lock().await;
        if ids::is_backup_id(resource_id) {
            let mut backup = self.backup(namespace, resource_id).await?;
            backup.tags = within_limit(merge(&backup.tags, tags), resource_id)?;
            self.store.put_backup(&backup).await?;
            return Ok(());
        }
        let mut cluster = self.load(namespace, check_cluster_id(resource_id)?).await?;
        cluster.tags = within_limit(merge(&cluster.tags, tags), resource_id)?;
        self.store.put_cluster(&cluster).await?;
        Ok(())
    }

    /// `UntagResource`: removes the tags with these keys; keys that are absent are ignored.
    pub async fn untag_resource(
        &self,
        namespace: &Namespace,
        resource_id: &str,
        keys: &[String],
    ) -> Result<(), Error> {
        let _admin = self.admin.lock().await;
        if ids::is_backup_id(resource_id) {
            let mut backup = self.backup(namespace, resource_id).await?;
            backup.tags.retain(|tag| !keys.contains(&tag.key));
            self.store.put_backup(&backup).await?;
            return Ok(());
        }
        let mut cluster = self.load(namespace, check_cluster_id(resource_id)?).await?;
        cluster.tags.retain(|tag| !keys.contains(&tag.key));
        self.store.put_cluster(&cluster).await?;
        Ok(())
    }

    /// `ListTags`: a resource's tags in the order they were added, a page at a time.
    pub async fn list_tags(
        &self,
        namespace: &Namespace,
        resource_id: &str,
        next_token: Option<&str>,
        max_results: Option<i64>,
    ) -> Result<Page<Tag>, Error> {
        let tags = match ids::is_backup_id(resource_id) {
            true => self.backup(namespace, resource_id).await?.tags,
            false => {
                self.load(namespace, check_cluster_id(resource_id)?)
                    .await?
                    .tags
            }
        };
        paginate(
            tags,
            |tag| tag.key.as_str(),
            next_token,
            max_results,
            MAX_TAGS_PER_PAGE,
        )
    }
}

fn check_cluster_id(resource_id: &str) -> Result<&str, Error> {
    match ids::is_cluster_id(resource_id) {
        true => Ok(resource_id),
        false => Err(Error::InvalidRequest(format!(
            "ResourceId '{resource_id}' is neither a cluster id (cluster-...) nor a backup id (backup-...)."
        ))),
    }
}

fn within_limit(tags: Vec<Tag>, resource_id: &str) -> Result<Vec<Tag>, Error> {
    match tags.len() <= MAX_TAGS {
        true => Ok(tags),
        false => Err(Error::ResourceLimitExceeded(format!(
            "{resource_id} would have {} tags; a resource can have at most {MAX_TAGS}.",
            tags.len()
        ))),
    }
}
