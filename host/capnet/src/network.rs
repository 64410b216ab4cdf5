//! `wasi:sockets/network`: the `network` resource is a [`Grant`].

use crate::bindings::sockets::network::{ErrorCode, Host, HostNetwork};
use crate::ctx::CapnetCtxView;
use crate::error::{SocketError, error_code_of};
use crate::grant::Grant;
use wasmtime::component::Resource;

/// A `network`: the authority to use the network that it was created with.
pub struct Network {
    pub(crate) grant: Grant,
}

impl Host for CapnetCtxView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.into_code()
    }

    fn network_error_code(
        &mut self,
        error: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        let error = self.table.get(&error)?;
        Ok(error.downcast_ref::<std::io::Error>().map(error_code_of))
    }
}

impl HostNetwork for CapnetCtxView<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        self.table.delete(network)?;
        Ok(())
    }
}
