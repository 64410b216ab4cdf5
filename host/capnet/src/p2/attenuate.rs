//! `capnet:sockets/attenuate`: narrower `network`s and the revokers that take them back.

use crate::ctx::CapnetCtxView;
use crate::grant::Revoker;
use crate::p2::bindings::attenuate::{Host, HostRevoker, RuleError};
use crate::p2::network::Network;
use capnet_policy::{Policy, Verdict};
use wasmtime::component::Resource;

/// Most rules one derivation takes: a derived grant is compiled in the host, so its size is
/// bounded like any other guest-driven allocation.
const MAX_RULES: usize = 4096;

/// Most scopes one grant's chain holds: every check walks the chain.
const MAX_DEPTH: usize = 16;

type Derived = (Resource<Network>, Resource<Revoker>);

impl Host for CapnetCtxView<'_> {
    fn derive(
        &mut self,
        parent: Resource<Network>,
        allow: Vec<String>,
        deny: Vec<String>,
    ) -> wasmtime::Result<Result<Derived, RuleError>> {
        let parent = self.table.get(&parent)?.grant.clone();
        if allow.len() + deny.len() > MAX_RULES {
            return Ok(Err(RuleError {
                rule: String::new(),
                message: format!("too many rules (at most {MAX_RULES} in one derivation)"),
            }));
        }
        if parent.depth() >= MAX_DEPTH {
            return Ok(Err(RuleError {
                rule: String::new(),
                message: format!("derivations nest at most {MAX_DEPTH} deep"),
            }));
        }
        let mut rules = Policy::builder();
        for (verdict, texts) in [(Verdict::Allow, &allow), (Verdict::Deny, &deny)] {
            for text in texts {
                rules = match rules.rule_text(verdict, text) {
                    Ok(rules) => rules,
                    Err(e) => {
                        return Ok(Err(RuleError {
                            rule: text.clone(),
                            message: e.kind().to_string(),
                        }));
                    }
                };
            }
        }
        let (grant, revoker) = parent.derive(rules.build());
        let network = self.table.push(Network { grant })?;
        let revoker = self.table.push(revoker)?;
        Ok(Ok((network, revoker)))
    }
}

impl HostRevoker for CapnetCtxView<'_> {
    fn revoke(&mut self, revoker: Resource<Revoker>) -> wasmtime::Result<()> {
        self.table.get(&revoker)?.revoke();
        Ok(())
    }

    fn drop(&mut self, revoker: Resource<Revoker>) -> wasmtime::Result<()> {
        self.table.delete(revoker)?;
        Ok(())
    }
}
