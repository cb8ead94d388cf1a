//! A tenant's pipeline config in the planner: its keys in `kfp-launcher` and
//! `artifact-repositories` made, set back when they drift, written again
//! when the namespace is recreated, and given back when the tenant opts out.

use crate::address::Address;
use crate::kinds::{desired_pipeline_config, pipeline_config_drift};
use crate::plan::planner::Planner;
use crate::plan::{Action, Reason, State};
use crate::ports::PIPELINE_CONFIG_MAPS;
use crate::spec::Tenant;

impl Planner<'_> {
    pub(super) fn pipeline_config(&mut self, tenant: &Tenant, profile_action: Action) {
        let ns = tenant.namespace.as_str();
        let Some(root) = &tenant.pipeline_root else {
            // Opted out: what kfp-tenant wrote is given back; nothing else is
            // touched. A namespace made again with its Profile has nothing of it.
            if profile_action == Action::Replace {
                return;
            }
            for name in PIPELINE_CONFIG_MAPS {
                if let Some(live) = self.observed.config_maps.get(&(ns.to_owned(), name.to_owned()))
                    && live.ours()
                {
                    let before = State::PipelineConfig(live.clone());
                    self.push(Address::pipeline_config(ns, name), Action::Delete, Some(Reason::OptedOut), Some(before), None);
                }
            }
            return;
        };
        // A Profile whose namespace the controller has not made yet (its
        // default-editor is missing: the plan warns) gets no write that
        // could only wait for it.
        let editor = (ns.to_owned(), crate::spec::DEFAULT_SERVICE_ACCOUNT.to_owned());
        if matches!(profile_action, Action::NoOp | Action::Update) && !self.observed.service_accounts.contains_key(&editor) {
            return;
        }
        for want in desired_pipeline_config(tenant, root, &self.cluster.bucket, &self.cluster.region) {
            let address = Address::pipeline_config(ns, &want.name);
            let live = self.observed.config_maps.get(&(ns.to_owned(), want.name.clone()));
            let (action, reason, before) = match live {
                // The namespace and everything in it goes with the Profile.
                _ if profile_action == Action::Replace => (Action::Create, Some(Reason::NamespaceRecreated), None),
                None => (Action::Create, Some(Reason::Missing), None),
                Some(live) => {
                    let drift = pipeline_config_drift(live, &want);
                    let before = Some(State::PipelineConfig(live.keys_of(&want)));
                    if drift.is_empty() {
                        (Action::NoOp, None, before)
                    } else {
                        (Action::Update, Some(Reason::Drift { attributes: drift }), before)
                    }
                }
            };
            self.push(address, action, reason, before, Some(State::PipelineConfig(want)));
        }
    }
}
