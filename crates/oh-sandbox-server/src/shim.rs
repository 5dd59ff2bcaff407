//! TEMPORARY until oh-client's ServiceClient lands.
#![allow(dead_code, unreachable_pub, missing_docs)]
use oh_protocol::SecretString;
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct ServiceClient;
impl ServiceClient {
    pub fn new(_: &str) -> Result<Self, oh_client::Error> {
        Ok(Self)
    }
    pub fn with_header(self, _: &'static str, _: &SecretString) -> Result<Self, oh_client::Error> {
        Ok(self)
    }
    pub fn with_timeout(self, _: Duration) -> Self {
        self
    }
    pub async fn get<T: serde::de::DeserializeOwned>(
        &self,
        _: &str,
    ) -> Result<T, oh_client::Error> {
        Err(oh_client::Error::Protocol("shim".into()))
    }
    pub async fn post<B: serde::Serialize + ?Sized, T: serde::de::DeserializeOwned>(
        &self,
        _: &str,
        _: &B,
        _: Option<Duration>,
    ) -> Result<T, oh_client::Error> {
        Err(oh_client::Error::Protocol("shim".into()))
    }
}
