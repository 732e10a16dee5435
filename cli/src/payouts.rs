//! `scale-diffusion payouts list | approve | mark-paid`: the payout ledger for whoever approves
//! payouts. Amounts are integer lamports; SOL is shown for people only.

use std::fmt::Write as _;
use std::process::ExitCode;

use sd_ledger::Payout;

use crate::args::{PayoutsCommand, PayoutsListArgs};

pub fn run(command: &PayoutsCommand) -> anyhow::Result<ExitCode> {
    match command {
        PayoutsCommand::List(args) => list(args),
        PayoutsCommand::Approve(args) => {
            let mut ledger = crate::review::open_existing(&args.ledger.ledger)?;
            let payout = ledger.approve(
                &args.wallet,
                &args.by,
                &crate::clock::now_rfc3339(),
                args.lamports.map(sd_core::Lamports),
            )?;
            crate::output::print(&format!(
                "approved payout #{} to {}: {} SOL ({} lamports, {} item{}), by {}\n",
                payout.id,
                payout.wallet,
                payout.amount_sol(),
                payout.amount_lamports.0,
                payout.items.len(),
                if payout.items.len() == 1 { "" } else { "s" },
                args.by
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        PayoutsCommand::SetRate(args) => {
            let mut ledger = crate::review::open_existing(&args.ledger.ledger)?;
            let before = ledger.rate()?;
            ledger.set_rate(
                sd_core::Lamports(args.lamports),
                &crate::clock::now_rfc3339(),
            )?;
            crate::output::print(&format!(
                "rate: {} -> {} lamports per valid segment ({} SOL); pending payouts re-priced, \
                 approved and paid ones unchanged. Set [payout] lamports_per_segment = {} in the \
                 config too.\n",
                before.map_or("unset".to_owned(), |r| r.0.to_string()),
                args.lamports,
                sd_core::Lamports(args.lamports).sol(),
                args.lamports
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        PayoutsCommand::MarkPaid(args) => {
            let mut ledger = crate::review::open_existing(&args.ledger.ledger)?;
            let payout =
                ledger.mark_paid(args.id, &args.signature, &crate::clock::now_rfc3339())?;
            crate::output::print(&format!(
                "payout #{} to {} marked paid: {} SOL, signature {}\n",
                payout.id,
                payout.wallet,
                payout.amount_sol(),
                payout.signature.as_deref().unwrap_or("")
            ))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(args: &PayoutsListArgs) -> anyhow::Result<ExitCode> {
    if let Some(wallet) = &args.wallet {
        sd_core::WalletAddress::parse(wallet)
            .map_err(|why| anyhow::anyhow!("--wallet {wallet:?} is not a wallet: {why}"))?;
    }
    let ledger = crate::review::open_existing(&args.ledger.ledger)?;
    let payouts = ledger.payouts(args.wallet.as_deref())?;
    let totals: Vec<_> = ledger
        .wallet_totals()?
        .into_iter()
        .filter(|t| args.wallet.as_ref().is_none_or(|w| *w == t.wallet_address))
        .collect();
    if args.json {
        #[derive(serde::Serialize)]
        struct Listing<'a> {
            payouts: &'a [Payout],
            wallets: &'a [sd_ledger::WalletTotals],
        }
        let doc = Listing {
            payouts: &payouts,
            wallets: &totals,
        };
        crate::output::print(&(serde_json::to_string_pretty(&doc)? + "\n"))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    if payouts.is_empty() {
        let _ = writeln!(
            out,
            "no payouts{}: no valid segment has earned anything yet",
            args.wallet
                .as_deref()
                .map_or(String::new(), |w| format!(" for {w}"))
        );
    }
    for payout in &payouts {
        render_payout(&mut out, payout);
    }
    let _ = writeln!(out, "\nwallets:");
    render_wallet_totals(&mut out, &totals);
    crate::output::print(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// The per-wallet view as a table: what `payouts list` and the end of `process` show.
pub(crate) fn render_wallet_totals(out: &mut String, totals: &[sd_ledger::WalletTotals]) {
    let _ = writeln!(
        out,
        "  {:<44}  {:>8}  {:>7}  {:>14}  {:>14}  {:>14}  {:>14}",
        "wallet", "segments", "frames", "earned SOL", "pending SOL", "approved SOL", "paid SOL"
    );
    for t in totals {
        let _ = writeln!(
            out,
            "  {:<44}  {:>8}  {:>7}  {:>14}  {:>14}  {:>14}  {:>14}",
            t.wallet_address,
            t.valid_segments,
            t.total_frames,
            t.payout_sol,
            t.pending_lamports.sol(),
            t.approved_lamports.sol(),
            t.paid_lamports.sol()
        );
    }
}

fn render_payout(out: &mut String, payout: &Payout) {
    let _ = write!(
        out,
        "payout #{}  {}  {}  {} SOL ({} lamports)  created {}",
        payout.id,
        payout.wallet,
        payout.state,
        payout.amount_sol(),
        payout.amount_lamports.0,
        payout.created_at
    );
    if let (Some(by), Some(at)) = (&payout.approved_by, &payout.approved_at) {
        let _ = write!(out, " · approved by {by} at {at}");
    }
    if let (Some(signature), Some(at)) = (&payout.signature, &payout.paid_at) {
        let _ = write!(out, " · paid at {at}, signature {signature}");
    }
    out.push('\n');
    for item in &payout.items {
        let _ = writeln!(
            out,
            "    {:>15} SOL  {:<10}  {}  ({} frames){}",
            item.amount_lamports.sol(),
            item.kind.as_str(),
            item.key,
            item.frames,
            if item.note.is_empty() {
                String::new()
            } else {
                format!(" · {}", item.note)
            }
        );
    }
}
