//! Who may connect. On the Unix socket the peer's uid must be the daemon's own (checked in
//! `sql.rs` before a session exists); over TCP, which is bound to 127.0.0.1 only and off unless
//! configured, the client proves it knows the configured password with SCRAM-SHA-256 (pgwire's
//! implementation). Any user name is accepted: the password is the credential.

use std::sync::Arc;

use async_trait::async_trait;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password, random_nonce};
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password};
use pgwire::api::{ClientInfo, PidSecretKeyGenerator};
use pgwire::error::PgWireResult;
use pgwire::messages::startup::SecretKey;

/// PBKDF2 rounds of the SCRAM verifier (PostgreSQL's default).
const SCRAM_ITERATIONS: usize = 4096;

/// The configured password as a SCRAM verifier: salted once when the server starts, so the
/// cleartext is not kept and each login does not pay for the hashing again.
pub struct ScramPassword {
    salt: Vec<u8>,
    salted: Vec<u8>,
}

impl std::fmt::Debug for ScramPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramPassword(..)")
    }
}

impl ScramPassword {
    pub fn new(password: &str) -> Self {
        // a random string is as good a salt as random bytes
        let salt = random_nonce().into_bytes();
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        Self { salt, salted }
    }
}

#[async_trait]
impl AuthSource for ScramPassword {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<Password> {
        Ok(Password::new(Some(self.salt.clone()), self.salted.clone()))
    }
}

/// The parameters every session announces after authentication.
pub fn server_parameters() -> DefaultServerParameterProvider {
    let mut params = DefaultServerParameterProvider::default();
    params.server_version = super::settings::SERVER_VERSION.to_owned();
    params.default_transaction_read_only = true;
    params.is_superuser = false;
    params
}

/// The SCRAM-SHA-256 exchange of one TCP connection; `keys` hands out its cancel key.
pub fn scram_handler(
    password: Arc<ScramPassword>,
    keys: Arc<dyn PidSecretKeyGenerator>,
) -> SASLAuthStartupHandler<DefaultServerParameterProvider> {
    let mut scram = ScramAuth::new(password);
    scram.set_iterations(SCRAM_ITERATIONS);
    SASLAuthStartupHandler::new(Arc::new(server_parameters())).with_scram(scram).with_pid_secret_key_generator(keys)
}

/// Hands out a connection's (pid, secret key) and registers them with `on_key`, so a
/// CancelRequest carrying them reaches the session.
pub struct CancelKeys<F> {
    pub generator: Arc<dyn PidSecretKeyGenerator>,
    pub on_key: F,
}

impl<F: Fn(i32, &SecretKey) + Send + Sync> PidSecretKeyGenerator for CancelKeys<F> {
    fn generate(&self, client: &dyn ClientInfo) -> (i32, SecretKey) {
        let (pid, secret) = self.generator.generate(client);
        (self.on_key)(pid, &secret);
        (pid, secret)
    }
}
