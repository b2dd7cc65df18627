//! A statement's answer and how it reaches the client: rows as ready-made DataRow messages,
//! written to the socket as they are ([`RawRows`]); anything else as pgwire sends it.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use futures::stream::BoxStream;
use futures::{Sink, SinkExt, StreamExt, stream};
use pgwire::api::copy::send_copy_out_response;
use pgwire::api::query::send_execution_response;
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::RowDescription;
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};

use super::encode::{Column, Frames, encode_batch};
use super::error::QueryError;
use super::session::Canceler;
use super::wire::RawRows;

/// A result's rows, streamed as the session produces them.
pub struct Rows {
    pub fields: Arc<Vec<FieldInfo>>,
    pub frames: BoxStream<'static, PgWireResult<Frames>>,
    /// The command tag's word: SELECT, or FETCH.
    pub command: &'static str,
    /// Interrupts the query the rows come from (none for rows computed here).
    pub source: Option<Canceler>,
}

impl Rows {
    /// A one-row, one-column text result (`SHOW`'s).
    pub fn single_text(name: &str, value: &str) -> Result<Self, QueryError> {
        let column = Column::text(name);
        let batch = RecordBatch::try_from_iter([(name, Arc::new(StringArray::from(vec![value])) as ArrayRef)])
            .map_err(|e| QueryError::Encode(e.to_string()))?;
        let row = encode_batch(&batch, std::slice::from_ref(&column)).map_err(QueryError::Encode)?;
        let fields = Arc::new(vec![column.field_info()]);
        Ok(Self { fields, frames: stream::iter([Ok(row)]).boxed(), command: "SELECT", source: None })
    }

    /// The rows as pgwire's own response, a `DataRow` each: for a portal read in parts, whose
    /// suspending and resuming pgwire does.
    pub fn into_query_response(self) -> QueryResponse {
        let rows = self.frames.flat_map(|frames| {
            let rows = frames.and_then(|f| f.into_data_rows().map_err(|e| QueryError::Encode(e).into()));
            match rows {
                Ok(rows) => stream::iter(rows).map(Ok).left_stream(),
                Err(e) => stream::iter([Err(e)]).right_stream(),
            }
        });
        let mut response = QueryResponse::new(self.fields, rows);
        response.set_command_tag(self.command);
        response
    }
}

/// How a statement is answered.
pub enum Reply {
    Rows(Rows),
    /// `ROLLBACK TO SAVEPOINT`: the transaction goes on, no longer failed.
    Recovered(Tag),
    /// Everything but rows, as pgwire answers it.
    Other(Response),
}

/// Sends one statement's answer and tracks the transaction status it implies; `describe`:
/// rows are preceded by their RowDescription (the simple protocol; the extended one sent it
/// for Describe).
pub async fn send_reply<C>(client: &mut C, raw: &RawRows, reply: Reply, describe: bool) -> PgWireResult<()>
where
    C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::PortalStore: PortalStore,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    match reply {
        Reply::Rows(rows) => send_rows(client, raw, rows, describe).await,
        Reply::Recovered(tag) => {
            send_execution_response(client, tag).await?;
            client.set_transaction_status(TransactionStatus::Transaction);
            Ok(())
        }
        Reply::Other(Response::TransactionStart(tag)) => {
            send_execution_response(client, tag).await?;
            let status = client.transaction_status().to_in_transaction_state();
            client.set_transaction_status(status);
            Ok(())
        }
        Reply::Other(Response::TransactionEnd(tag)) => {
            send_execution_response(client, tag).await?;
            let status = client.transaction_status().to_idle_state();
            client.set_transaction_status(status);
            // portals do not outlive their transaction, as in PostgreSQL (pgwire drops only
            // the unnamed one): a fetch-size portal left open ends here with its cursor
            client.portal_store().clear_portals();
            Ok(())
        }
        Reply::Other(Response::Execution(tag)) => send_execution_response(client, tag).await,
        Reply::Other(Response::CopyOut(copy)) => send_copy_out_response(client, copy).await,
        Reply::Other(Response::EmptyQuery) => {
            client.feed(PgWireBackendMessage::EmptyQueryResponse(EmptyQueryResponse::new())).await?;
            Ok(())
        }
        Reply::Other(_) => Ok(()),
    }
}

/// Rows in fewer bytes than this go through pgwire's buffer, as `DataRow`s: a small result is
/// then one write with the rest of its answer (a write of its own for the rows made the
/// one-row answers dashboards ask for slower).
const COALESCED: usize = 8 * 1024;

/// Sends rows (after their RowDescription when `describe`) and the command tag counting them.
async fn send_rows<C>(client: &mut C, raw: &RawRows, rows: Rows, describe: bool) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin,
    PgWireError: From<C::Error>,
{
    let Rows { fields, mut frames, command, .. } = rows;
    if describe {
        let description = RowDescription::new(fields.iter().map(Into::into).collect());
        client.feed(PgWireBackendMessage::RowDescription(description)).await?;
    }
    let mut count = 0;
    while let Some(frames) = frames.next().await {
        let frames = frames?;
        count += frames.rows;
        if frames.bytes.len() < COALESCED {
            for row in frames.into_data_rows().map_err(QueryError::Encode)? {
                client.feed(PgWireBackendMessage::DataRow(row)).await?;
            }
        } else {
            raw.send(client, frames.bytes.freeze()).await?;
        }
    }
    let tag = Tag::new(command).with_rows(count);
    client.feed(PgWireBackendMessage::CommandComplete(tag.into())).await?;
    Ok(())
}
