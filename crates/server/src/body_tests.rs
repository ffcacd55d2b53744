//! Tests of body.rs: the body timeout, received and streamed, and the
//! streamed chunked limit.

use super::*;
use crate::body_spool::SpoolConfig;
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_body_that_stalls_while_received_times_out() {
    let (mut client, mut server) = tokio::net::UnixStream::pair().expect("a socket pair");
    assert!(client.write_all(b"ab").await.is_ok());
    let mut rbuf = BytesMut::new();
    let Ok((body, Some(mut pump))) = BodyPump::start(BodyFraming::Length(10), false, &mut rbuf)
    else {
        panic!("a body still to come")
    };
    pump.set_timeout(Duration::from_millis(50));
    let mut spool = BodySpool::new(&SpoolConfig::default());
    let got = pump.receive(&mut server, &mut rbuf, body, &mut spool).await;
    assert_eq!(got, Err(BodyError::TimedOut(Duration::from_millis(50))));
    assert_eq!(spool.len(), 2);
    assert!(pump.failed());
}

#[tokio::test]
async fn a_streamed_body_that_stalls_gives_the_consumer_a_timeout() {
    let (mut client, mut server) = tokio::net::UnixStream::pair().expect("a socket pair");
    assert!(client.write_all(b"ab").await.is_ok());
    let mut rbuf = BytesMut::new();
    let Ok((mut body, Some(mut pump))) = BodyPump::start(BodyFraming::Length(10), false, &mut rbuf)
    else {
        panic!("a body still to come")
    };
    pump.set_timeout(Duration::from_millis(50));
    let consumer = tokio::spawn(async move {
        let mut pieces = Vec::new();
        while let Some(piece) = body.next().await {
            pieces.push(piece);
        }
        pieces
    });
    while pump.active() {
        if pump.feed(&mut server, &mut rbuf).await.is_err() {
            break;
        }
    }
    let Ok(pieces) = consumer.await else {
        panic!("consumer")
    };
    assert_eq!(pieces.first(), Some(&Ok(Bytes::from_static(b"ab"))));
    assert!(
        matches!(pieces.last(), Some(Err(e)) if e.is_timeout()),
        "{pieces:?}"
    );
}

#[tokio::test]
async fn a_streamed_chunked_body_past_the_limit_fails_too_large() {
    let (mut client, mut server) = tokio::net::UnixStream::pair().expect("a socket pair");
    assert!(
        client
            .write_all(b"6\r\nabcdef\r\n6\r\nghijkl\r\n")
            .await
            .is_ok()
    );
    let mut rbuf = BytesMut::new();
    let Ok((_body, Some(mut pump))) = BodyPump::start(BodyFraming::Chunked, false, &mut rbuf)
    else {
        panic!("a body still to come")
    };
    pump.set_limit(10, 0);
    pump.discard();
    let mut last = Ok(0);
    while pump.active() && last.is_ok() {
        last = pump.feed(&mut server, &mut rbuf).await;
    }
    assert_eq!(last, Err(BodyError::TooLarge(10)));
}
