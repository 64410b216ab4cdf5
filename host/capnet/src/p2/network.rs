//! `wasi:sockets/network`: the `network` resource is a [`Grant`].

use crate::ctx::CapnetCtxView;
use crate::grant::Grant;
use crate::p2::bindings::sockets::network::{ErrorCode, Host, HostNetwork};
use crate::p2::error::SocketError;
use crate::socket::error::error_code_of;
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
        Ok(error
            .downcast_ref::<std::io::Error>()
            .map(|e| error_code_of(e).into()))
    }
}

impl HostNetwork for CapnetCtxView<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        self.table.delete(network)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::CapnetCtx;
    use crate::p2::error::code_name;
    use wasmtime::component::ResourceTable;

    /// `network-error-code` names the socket error behind a failed stream operation, and
    /// nothing for an error that is not a socket's.
    #[test]
    fn network_error_code_finds_the_code_behind_a_stream_error() {
        let mut ctx = CapnetCtx::default();
        let mut table = ResourceTable::new();
        let mut view = CapnetCtxView {
            ctx: &mut ctx,
            table: &mut table,
        };
        let reset = std::io::Error::from_raw_os_error(libc::ECONNRESET);
        let socket_error = view.table.push(wasmtime::Error::new(reset)).unwrap();
        let code = view.network_error_code(socket_error).unwrap();
        assert_eq!(code.map(code_name), Some("connection-reset"));
        let other = view
            .table
            .push(wasmtime::format_err!("not a socket's"))
            .unwrap();
        assert_eq!(view.network_error_code(other).unwrap().map(code_name), None);
    }
}
