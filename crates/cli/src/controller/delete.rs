//! KubeflowTenants being deleted. `Retain` keeps the tenant and hands it
//! back to the tenants files (its role loses the KubeflowTenant's tag), then
//! lets go. `Delete`
//! destroys what the tenant owns, as `destroy` does, and then lets go; a
//! resource that owns nothing lets go at once, with nothing else deleted:
//! one named like a settings file's tenant (that tenant is the file's), one
//! whose spec never validated and that no apply gave a role, and one whose
//! destroy the planner refuses (what it names is not this tenant's: another
//! tenant's, the file's, or not kfp-tenant's). One resource's trouble holds
//! no other's deletion back.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use kfp_tenant_core::apply::{self, Outcome};
use kfp_tenant_core::crd::{DeletionPolicy, tenant_of};
use kfp_tenant_core::plan;
use kfp_tenant_core::refresh::ReadSet;
use kfp_tenant_core::spec::{Desired, TenantInput};
use kfp_tenant_core::tags;
use kfp_tenant_core::validate;
use kfp_tenant_k8s::TenantResource;

use super::reconcile::{Cycle, Logged, Outcomes, Verdict, declared_by_resources};

/// What deleting a KubeflowTenant does.
enum Deletion {
    /// Its tenant is destroyed.
    Destroy(TenantInput),
    /// Its tenant stays, handed back to the tenants files.
    Retain(TenantInput),
    /// It owns nothing: it goes alone.
    Nothing,
}

impl Cycle<'_> {
    /// Resources being deleted: each destroyed (or retained, or let go with
    /// nothing to delete), then its finalizer dropped.
    pub async fn delete(&self, resources: &[TenantResource], outcomes: &mut Outcomes) -> Result<()> {
        let own: BTreeSet<&str> = self.settings.tenants.iter().map(|t| t.namespace.as_str()).collect();
        let mut doomed = Vec::new();
        let mut let_go: BTreeMap<String, Option<String>> = BTreeMap::new();
        for r in resources.iter().filter(|r| r.deleting && r.has_finalizer) {
            match self.what_to_delete(r, &own) {
                Ok(Deletion::Destroy(tenant)) => doomed.push(tenant),
                Ok(Deletion::Retain(tenant)) => match self.hand_back(&tenant).await {
                    Ok(()) => {
                        let_go.insert(r.name.clone(), None);
                    }
                    Err(e) => {
                        let message = format!("cannot hand the retained tenant back to the tenants files: {e}");
                        outcomes.verdicts.insert(r.name.clone(), Verdict::NotReady { reason: "Deleting", message });
                    }
                },
                Ok(Deletion::Nothing) => {
                    let_go.insert(r.name.clone(), None);
                }
                Err(message) => {
                    outcomes.verdicts.insert(r.name.clone(), Verdict::NotReady { reason: "Invalid", message });
                }
            }
        }
        let deleting: Vec<&TenantResource> = resources.iter().filter(|r| r.deleting).collect();
        let names: Vec<String> = doomed.iter().map(|t| t.namespace.clone()).collect();
        if let Ok(together) = validate::validate(&self.file(doomed.clone())) {
            if !doomed.is_empty()
                && let Err(e) = self.destroy(together, &deleting, outcomes, &mut let_go).await
            {
                let message = format!("deleting the tenant did not finish: {e:#}; the next cycle goes on");
                for ns in names {
                    outcomes.verdicts.entry(ns).or_insert(Verdict::NotReady { reason: "Deleting", message: message.clone() });
                }
            }
        } else {
            // Valid one by one but not together (two name one role, say):
            // each is destroyed on its own, the claims keeping them apart.
            for (tenant, ns) in doomed.into_iter().zip(names) {
                // Each was valid alone (what_to_delete checked it).
                let destroyed = match validate::validate(&self.file(vec![tenant])) {
                    Ok(alone) => self.destroy(alone, &deleting, outcomes, &mut let_go).await,
                    Err(e) => Err(e.into()),
                };
                if let Err(e) = destroyed {
                    let message = format!("deleting the tenant did not finish: {e:#}; the next cycle goes on");
                    outcomes.verdicts.insert(ns, Verdict::NotReady { reason: "Deleting", message });
                }
            }
        }
        for (name, kept) in let_go {
            if let Some(kept) = kept {
                crate::output::note!("kubeflowtenant {name}: deleted without its tenant: {kept}");
            }
            match self.live.kube().release_tenant(&name).await {
                Ok(()) => {
                    outcomes.released.insert(name);
                }
                Err(e) => {
                    let message = format!("cannot drop the finalizer: {e}; the next cycle tries again");
                    outcomes.verdicts.insert(name, Verdict::NotReady { reason: "Deleting", message });
                }
            }
        }
        Ok(())
    }

    /// What a deleted resource's deletion does; an error when it cannot be judged.
    fn what_to_delete(&self, r: &TenantResource, own: &BTreeSet<&str>) -> Result<Deletion, String> {
        if own.contains(r.name.as_str()) {
            // A Conflict: the tenant is the settings file's. If this resource
            // applied it before the file named it, its role's tag goes back.
            return Ok(tenant_of(&r.name, &r.spec).map_or(Deletion::Nothing, |(tenant, _)| Deletion::Retain(tenant)));
        }
        let problem = match tenant_of(&r.name, &r.spec) {
            Ok((tenant, DeletionPolicy::Retain)) => return Ok(Deletion::Retain(tenant)),
            Ok((tenant, DeletionPolicy::Delete)) => match validate::validate(&self.file(vec![tenant.clone()])) {
                // Destroyed whether or not its status says it was applied: a
                // status write lost after an apply must not leave its role behind.
                Ok(_) => return Ok(Deletion::Destroy(tenant)),
                Err(e) => e.to_string(),
            },
            Err(e) => e,
        };
        // An invalid spec writes nothing: if no apply ever gave it a role,
        // there is nothing to delete.
        if r.status.get("roleArn").is_none() {
            return Ok(Deletion::Nothing);
        }
        Err(format!("cannot delete the tenant: {problem}; fix the spec, or set spec.deletionPolicy: Retain"))
    }

    /// A retained tenant's role no longer says a KubeflowTenant declares it,
    /// so that a tenants file may manage (or destroy) it; a role that does
    /// not exist, or names another KubeflowTenant, is left as it is.
    async fn hand_back(&self, tenant: &TenantInput) -> Result<()> {
        let Ok(desired) = validate::validate(&self.file(vec![tenant.clone()])) else { return Ok(()) };
        let iam = self.live.providers().iam;
        let name = &desired.tenants[0].role_name;
        let declared = iam.get_role(name).await?.is_some_and(|role| tags::kubeflow_tenant(&role.tags) == Some(tenant.namespace.as_str()));
        if declared {
            let (ns, lease) = (&tenant.namespace, self.lease);
            crate::output::note!("kubeflowtenant {ns}: retained; IAM role {name} is handed back to the tenants files (lease {lease})");
            iam.untag_role(name, &[tags::KUBEFLOW_TENANT.to_owned()]).await?;
        }
        Ok(())
    }

    /// Destroys the tenants of `desired` (the doomed, valid together) in one plan, leaving out (and
    /// letting go) each whose destroy is refused, so that one never holds
    /// the others back.
    async fn destroy(
        &self,
        mut desired: Desired,
        resources: &[&TenantResource],
        outcomes: &mut Outcomes,
        let_go: &mut BTreeMap<String, Option<String>>,
    ) -> Result<()> {
        declared_by_resources(&mut desired, resources);
        let observed = self.live.observe(&ReadSet::for_destroy(&desired, self.run.bind_cluster), self.run).await?;
        let plan = loop {
            match plan::plan_destroy(&desired, &observed) {
                Ok(plan) => break plan,
                Err(e) => {
                    // Each tenant's refusals, joined (a tenant may have several).
                    let mut refused: BTreeMap<String, String> = BTreeMap::new();
                    for p in &e.problems {
                        let Some(ns) = p.address.as_ref().and_then(|a| a.namespace()) else {
                            anyhow::bail!("cannot delete the tenants being deleted: {e}");
                        };
                        let said = format!("{}; {}", p.message, p.fix);
                        refused.entry(ns.to_owned()).and_modify(|m| *m = format!("{m}; {said}")).or_insert(said);
                    }
                    desired = plan::target(
                        &desired,
                        &desired.tenants.iter().map(|t| t.namespace.clone()).filter(|ns| !refused.contains_key(ns)).collect::<Vec<_>>(),
                    );
                    let_go.extend(refused.into_iter().map(|(ns, why)| (ns, Some(why))));
                    if desired.tenants.is_empty() {
                        return Ok(());
                    }
                }
            }
        };
        let report = apply::apply(&plan, self.live.providers(), &self.options(), &Logged(self.lease)).await;
        let unfinished: BTreeSet<&str> =
            report.outcomes.iter().filter(|(_, (_, o))| *o != Outcome::Done).filter_map(|(a, _)| a.namespace()).collect();
        for tenant in &desired.tenants {
            if unfinished.contains(tenant.namespace.as_str()) {
                let message = "deleting the tenant did not finish; the next cycle goes on".to_owned();
                outcomes.verdicts.insert(tenant.namespace.clone(), Verdict::NotReady { reason: "Deleting", message });
            } else {
                let_go.insert(tenant.namespace.clone(), None);
            }
        }
        Ok(())
    }
}
