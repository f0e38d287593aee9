"""RCPT reply classification.

The first table is every reply of Reacher's conformance set, with the outcome we give it; the
rows marked ``# Reacher: ...`` are where we decide differently on purpose.
"""

from __future__ import annotations

import pytest

from app.engine.rules.replies import Category, Outcome, classify_reply

D, INV, DIS, FULL = Outcome.DELIVERABLE, Outcome.INVALID, Outcome.DISABLED, Outcome.FULL_INBOX
BLK, TMP, ERR = Outcome.BLOCKED, Outcome.TEMPORARY, Outcome.ERROR
IP, RDNS = "IpBlacklisted", "NeedsRDNS"

GMAIL_NO_SUCH_USER = (
    "5.1.1 The email account that you tried to reach does not exist. Please try",
    "5.1.1 double-checking the recipient's email address for typos or",
    "5.1.1 unnecessary spaces. Learn more at",
    "5.1.1  https://support.google.com/mail/?p=NoSuchUser he11-20020a1709073d8b00b006e8621"
    "00d5bsi2937572ejc.396 - gsmtp",
)
GMAIL_OUT_OF_STORAGE = (
    "4.2.2 The recipient's inbox is out of storage space. Please direct the",
    "4.2.2 recipient to",
    "4.2.2  https://support.google.com/mail/?p=OverQuotaTemp 41be03b00d2f7-801d5c00011si4287631"
    "a12.311 - gsmtp",
)
GMAIL_RATE = (
    "4.2.1 The user you are trying to contact is receiving mail at a rate that",
    "4.2.1 prevents additional messages from being delivered.",
)
GMX_BLOCK_LISTED = (
    "gmx.net (mxgmx117) Nemesis ESMTP Service not available",
    "No SMTP service",
    "IP address is block listed.",
    "For explanation visit https://www.gmx.net/mail/senderguidelines?c=bl",
)

REACHER_VECTORS = [
    # --- the mailbox does not exist ---------------------------------------------------------
    pytest.param(550, ("Address rejected",), INV, None, id="address-rejected"),
    pytest.param(
        550,
        ("5.1.1 : Recipient address rejected: User unknown in virtual alias table",),
        INV,
        None,
        id="postfix-virtual-alias-unknown",
    ),
    pytest.param(550, ("5.1.1 : Unrouteable address",), INV, None, id="unrouteable"),
    pytest.param(550, GMAIL_NO_SUCH_USER, INV, None, id="gmail-no-such-user-multiline"),
    pytest.param(
        550,
        ("User not local or invalid address – Relay denied",),
        INV,
        None,
        id="user-not-local-relay-denied",
    ),
    pytest.param(550, ("Invalid recipient",), INV, None, id="invalid-recipient"),
    pytest.param(554, ("Unknown Recipient (#5.1.1)",), INV, None, id="status-in-parentheses"),
    pytest.param(550, ("5.1.1 <foo@bar.baz> User unknown",), INV, None, id="user-unknown"),
    pytest.param(550, ("Unknown user",), INV, None, id="unknown-user"),
    pytest.param(
        550, ("5.1.1 Recipient unknown <foo@bar.baz>",), INV, None, id="recipient-unknown"
    ),
    pytest.param(550, ("No such user here",), INV, None, id="no-such-user"),
    pytest.param(
        550, ("5.1.1 MXIN501 mailbox foo@bar.baz unknown",), INV, None, id="virginmedia-mxin501"
    ),
    pytest.param(
        550, ("Unknown address error 'MAILBOX NOT FOUND'",), INV, None, id="mailbox-not-found"
    ),
    pytest.param(
        550, ("5.1.1 Sorry, no mailbox here by that name",), INV, None, id="no-mailbox-by-name"
    ),
    pytest.param(
        550,
        ("Requested action not taken: mailbox unavailable",),
        INV,
        None,
        id="rfc5321-mailbox-unavailable",
    ),
    pytest.param(
        550,
        ("5.5.0 Requested actions not taken as the mailbox is unavailable",),
        INV,
        None,
        id="mailbox-is-unavailable-5.5.0",
    ),
    pytest.param(
        554,
        ("delivery error: This user doesn’t have an account",),
        INV,
        None,
        id="yahoo-no-account-curly-quote",
    ),
    pytest.param(
        550, ("Unknown local part foo in <foo@flabeg.com>",), INV, None, id="unknown-local-part"
    ),
    pytest.param(
        550,
        (
            "5.1.1 RCP-P1 Domain facebook.com no longer available "
            "https://www.facebook.com/postmaster/response_codes?ip=3.80.111.155#RCP-P1",
        ),
        INV,
        None,
        id="facebook-domain-no-longer-available",
    ),
    pytest.param(550, ("RCPT (foo@hgy.ooo) dosn't exist",), INV, None, id="dosnt-exist-typo"),
    pytest.param(
        550,
        ("5.1.1 <foo@bar.baz>: Email address could not be found, or was misspelled (G8)",),
        INV,
        None,
        id="could-not-be-found",
    ),
    pytest.param(550, ("No such person at this address",), INV, None, id="no-such-person"),
    pytest.param(550, ("5.1.1 <foo@bar.baz> Address Error",), INV, None, id="address-error"),
    pytest.param(
        550,
        ("E-mail address is not handled by this system",),
        INV,
        None,
        id="not-handled-by-this-system",
    ),
    pytest.param(550, ("5.1.1 recipient is not exist",), INV, None, id="is-not-exist"),
    pytest.param(
        550, ("5.1.1 <foo@bar.baz>  Recipient not found.",), INV, None, id="recipient-not-found"
    ),
    pytest.param(
        550,
        (
            "5.7.1 Email doesn't exist. Please forward it or send it to contact@magency.f",
            "5.7.1 r - gcdp 38308e7fff4ca-30344241c74si13773751fa.513 - gsmtp",
        ),
        INV,
        None,
        id="5.7.1-that-says-doesnt-exist",
    ),
    pytest.param(
        550,
        ("verify address failed, User not found ***@salemall.vn",),
        INV,
        None,
        id="user-not-found",
    ),
    # Reacher: invalid. A 4xx is never invalid.
    pytest.param(450, ("unable to verify user",), TMP, None, id="4xx-unable-to-verify-user"),
    pytest.param(550, ("5.1.1 Utilisateur inconnu",), INV, None, id="french-unknown-user"),
    pytest.param(550, ("5.1.1 anything else at all",), INV, None, id="bare-5.1.1"),
    # Reacher: invalid (any 5.7.1). These block our client, not the mailbox.
    pytest.param(
        554,
        ("5.7.1 <mta.voipdir.net[]>: Client host rejected: Access denied",),
        BLK,
        IP,
        id="5.7.1-client-host-rejected",
    ),
    pytest.param(
        550,
        (
            "5.7.1 Service unavailable; Client host [147.75.45.223] is blacklisted. Visit "
            "https://www.sophos.com/en-us/threat-center/ip-lookup.aspx?ip=147.75.45.223 to "
            "request delisting",
        ),
        BLK,
        IP,
        id="5.7.1-sophos-blacklisted",
    ),
    # --- disabled ---------------------------------------------------------------------------
    pytest.param(
        554,
        (
            "The email account that you tried to reach is disabled. Learn more at "
            "https://support.google.com/mail/?p=DisabledUser",
        ),
        DIS,
        None,
        id="gmail-disabled",
    ),
    pytest.param(
        554,
        (
            "delivery error: Sorry your message to foo@bar.baz cannot be delivered. This account "
            "has been disabled or discontinued",
        ),
        DIS,
        None,
        id="disabled-or-discontinued",
    ),
    pytest.param(
        550,
        ("5.2.1 RACT MY.IP: Mailbox is inactive: <foo@hanmail.net>",),
        DIS,
        None,
        id="hanmail-inactive",
    ),
    pytest.param(
        552,
        ("5.2.2 The email account that you tried to reach is over quota and inactive.",),
        DIS,
        None,
        id="inactive-beats-over-quota",
    ),
    # --- full inbox -------------------------------------------------------------------------
    pytest.param(
        552,
        ("5.2.2 The email account that you tried to reach is over quota.",),
        FULL,
        None,
        id="over-quota",
    ),
    pytest.param(452, GMAIL_OUT_OF_STORAGE, FULL, None, id="gmail-4.2.2-out-of-storage"),
    pytest.param(
        552,
        ("Requested mail action aborted: exceeded storage allocation; mailbox full",),
        FULL,
        None,
        id="mailbox-full",
    ),
    pytest.param(
        550, ("user has too many messages on the server",), FULL, None, id="too-many-messages"
    ),
    pytest.param(452, ("4.3.1 Insufficient system storage",), FULL, None, id="insufficient"),
    # --- deliverable, at a limited rate ----------------------------------------------------
    pytest.param(450, GMAIL_RATE, D, None, id="gmail-4.2.1-receiving-at-a-rate"),
    # --- temporary ----------------------------------------------------------------------------
    # Reacher: invalid (contains "address rejected"). Greylisting is temporary.
    pytest.param(
        450,
        (
            "4.2.0 <foo@bar.baz>: Recipient address rejected: Greylisted, see "
            "http://postgrey.schweikert.ch/help/bar.baz.html",
        ),
        TMP,
        None,
        id="postgrey-greylisted",
    ),
    # --- our client is blocked --------------------------------------------------------------
    pytest.param(
        451, ("4.7.1 <foo@bar.baz>: Relay access denied",), BLK, IP, id="relay-access-denied"
    ),
    pytest.param(
        450,
        ("4.7.1 Client host rejected: cannot find your reverse hostname, [147.75.45.223]",),
        BLK,
        RDNS,
        id="no-reverse-hostname",
    ),
    pytest.param(
        450,
        (
            "You dont seem to have a reverse dns entry. Come back later. You are greylisted for "
            "20 minutes. See http://www.fsf.org/about/systems/greylisting",
        ),
        BLK,
        RDNS,
        id="fsf-reverse-dns-greylist",
    ),
    pytest.param(421, ("4.3.2 Please try again later",), TMP, None, id="421-try-again-later"),
    pytest.param(
        451, ("Temporary local problem - please try later",), TMP, None, id="temporary-problem"
    ),
    pytest.param(
        550,
        ("Blocked - see https://ipcheck.proofpoint.com/?ip=23.129.64.192",),
        BLK,
        IP,
        id="proofpoint-blocked",
    ),
    pytest.param(
        550,
        (
            "JunkMail rejected - (gmail.com) [193.218.118.140]:46615 is in an RBL: "
            "http://www.barracudanetworks.com/reputation/?pr=1&ip=193.218.118.140",
        ),
        BLK,
        IP,
        id="barracuda-rbl",
    ),
    pytest.param(
        550,
        ("5.7.606 Access denied, banned sending IP [23.129.64.216]",),
        BLK,
        IP,
        id="microsoft-banned-sending-ip",
    ),
    pytest.param(
        554,
        (
            "resimta-h1p-037598.sys.comcast.net 5.135.185.166 found on one or more DNSBLs, see "
            "http://postmaster.comcast.net/smtp-error-codes.php#BL000001",
        ),
        BLK,
        IP,
        id="comcast-dnsbl",
    ),
    pytest.param(554, GMX_BLOCK_LISTED, BLK, IP, id="gmx-ip-block-listed"),
    pytest.param(
        550,
        ("5.7.0 Mail from 18.234.87.196 refused by Proofpoint Reputation Services.",),
        BLK,
        IP,
        id="proofpoint-reputation",
    ),
    pytest.param(550, ("SBRS score too low: http://www.senderbase.org/",), BLK, IP, id="sbrs"),
]

OUR_EXTENSIONS = [
    # 2xx
    pytest.param(250, ("2.1.5 OK",), D, None, id="250-ok"),
    pytest.param(251, ("User not local; will forward",), D, None, id="251-will-forward"),
    # enhanced status codes
    pytest.param(550, ("5.1.10 RESOLVER.ADR.RecipientNotFound",), INV, None, id="5.1.10-m365"),
    pytest.param(550, ("5.1.0 Address rejected.",), INV, None, id="5.1.0"),
    pytest.param(550, ("5.1.6 Recipient no longer on server",), INV, None, id="5.1.6-moved"),
    pytest.param(550, ("5.2.1 mailbox disabled",), DIS, None, id="5.2.1-mailbox-disabled"),
    pytest.param(552, ("5.2.2 Sorry",), FULL, None, id="5.2.2-without-words"),
    pytest.param(452, ("4.2.2 Mailbox full",), FULL, None, id="4.2.2-mailbox-full"),
    # 4xx: never invalid, never disabled
    pytest.param(
        450,
        ("4.1.1 <a@b.c>: Recipient address rejected: User unknown",),
        TMP,
        None,
        id="4.1.1-user-unknown-is-temporary",
    ),
    pytest.param(450, ("4.2.1 mailbox temporarily disabled",), TMP, None, id="4xx-disabled"),
    pytest.param(
        451,
        ("4.3.0 Multiple destination domains per transaction is unsupported.",),
        TMP,
        None,
        id="gmail-one-domain-per-transaction",
    ),
    pytest.param(
        421,
        ("4.7.0 Too many connections from your IP, closing",),
        TMP,
        None,
        id="421-too-many-connections",
    ),
    pytest.param(
        421, ("Service not available, closing transmission channel",), TMP, None, id="421-closing"
    ),
    pytest.param(451, ("4.7.1 Please try again later (greylisted)",), TMP, None, id="greylist"),
    pytest.param(452, ("4.5.3 Too many recipients",), TMP, None, id="too-many-recipients"),
    pytest.param(
        421,
        ("4.7.0 [TSS04] Messages from 1.2.3.4 temporarily deferred",),
        TMP,
        None,
        id="yahoo-tss04-deferred",
    ),
    pytest.param(
        451,
        ("Excessive unknown recipients - possible Open Relay (#4.1.8)",),
        TMP,
        None,
        id="yahoo-excessive-unknown-recipients",
    ),
    pytest.param(
        450,
        ("4.7.1 Service unavailable; client [1.2.3.4] blocked using zen.spamhaus",),
        BLK,
        IP,
        id="4xx-spamhaus",
    ),
    pytest.param(
        450,
        ("4.1.8 <bounce@ours.example>: Sender address rejected: Domain not found",),
        TMP,
        None,
        id="4xx-about-our-sender-is-temporary",
    ),
    # our IP, reputation, sender or policy: blocked, never invalid
    pytest.param(
        554,
        ("5.7.1 Service unavailable; Client host [1.2.3.4] blocked using zen.spamhaus.org",),
        BLK,
        IP,
        id="spamhaus",
    ),
    pytest.param(
        550,
        (
            "5.7.1 Unfortunately, messages from [1.2.3.4] weren't sent. Please "
            "contact your Internet service provider since part of their network is "
            "on our block list (S3150).",
        ),
        BLK,
        IP,
        id="outlook-s3150-block-list",
    ),
    pytest.param(
        553,
        (
            "5.7.1 [BL21] Connections will not be accepted from 1.2.3.4, because the "
            "ip is in Spamhaus's list",
        ),
        BLK,
        IP,
        id="yahoo-bl21",
    ),
    pytest.param(550, ("5.7.1 Your IP is listed by SORBS",), BLK, IP, id="sorbs"),
    pytest.param(550, ("5.7.1 Rejected by SpamCop",), BLK, IP, id="spamcop"),
    pytest.param(
        550,
        ("5.7.1 Sender address rejected: domain does not exist",),
        BLK,
        None,
        id="sender-address-rejected-is-not-the-mailbox",
    ),
    pytest.param(
        550,
        (
            "5.1.0 <bounce@ours.example>: Sender address rejected: User unknown in "
            "local recipient table",
        ),
        BLK,
        None,
        id="sender-user-unknown",
    ),
    pytest.param(550, ("5.1.7 Invalid address",), BLK, None, id="5.1.7-bad-sender"),
    pytest.param(550, ("5.7.1 SPF check failed",), BLK, None, id="spf"),
    pytest.param(
        550,
        ("5.7.1 Message rejected due to local policy",),
        BLK,
        None,
        id="5.7.1-policy-without-reason",
    ),
    pytest.param(
        554,
        ("5.7.1 <a@b.c>: Recipient address rejected: Access denied",),
        BLK,
        None,
        id="5.7.1-recipient-access-denied",
    ),
    pytest.param(550, ("5.7.1 Unable to relay",), BLK, None, id="5.7.1-unable-to-relay"),
    # a policy status with a plain "no such mailbox" text is still invalid
    pytest.param(550, ("5.7.1 No such user",), INV, None, id="5.7.1-no-such-user"),
    # unmatched
    pytest.param(550, ("5.4.1 Something odd",), ERR, None, id="5xx-unmatched"),
    pytest.param(554, ("Transaction failed",), ERR, None, id="5xx-no-status"),
    pytest.param(451, ("4.4.0 Something odd",), TMP, None, id="4xx-unmatched"),
    pytest.param(354, ("Go ahead",), ERR, None, id="3xx"),
    pytest.param(600, ("??",), ERR, None, id="out-of-range"),
    # words inside other words and IP addresses do not count
    pytest.param(550, ("Absorbs nothing",), ERR, None, id="sorbs-inside-a-word"),
    pytest.param(550, ("Garbled 5.1.1.1 text",), ERR, None, id="ip-is-not-a-status"),
]


@pytest.mark.parametrize(("code", "lines", "outcome", "description"), REACHER_VECTORS)
def test_reacher_vectors(code, lines, outcome, description):
    verdict = classify_reply(code, "\n".join(lines))
    assert (verdict.outcome, verdict.description) == (outcome, description)


@pytest.mark.parametrize(("code", "lines", "outcome", "description"), OUR_EXTENSIONS)
def test_where_reacher_is_silent(code, lines, outcome, description):
    verdict = classify_reply(code, "\n".join(lines))
    assert (verdict.outcome, verdict.description) == (outcome, description)


def test_every_reacher_vector_is_in_the_table():
    assert len(REACHER_VECTORS) == 56


@pytest.mark.parametrize(
    ("code", "category"),
    [
        pytest.param(250, Category.ACCEPT, id="250"),
        pytest.param(251, Category.ACCEPT, id="251"),
        pytest.param(421, Category.TEMP_FAIL, id="421"),
        pytest.param(450, Category.TEMP_FAIL, id="450"),
        pytest.param(550, Category.HARD_FAIL, id="550"),
        pytest.param(554, Category.HARD_FAIL, id="554"),
        pytest.param(354, Category.UNKNOWN, id="354"),
        pytest.param(0, Category.UNKNOWN, id="0"),
    ],
)
def test_category_follows_the_code_class(code, category):
    assert classify_reply(code, "whatever").category is category


@pytest.mark.parametrize(
    ("code", "message", "error_message"),
    [
        pytest.param(
            550,
            "\n".join(GMAIL_NO_SUCH_USER),
            "permanent: 5.1.1 The email account that you tried to reach does not exist. Please "
            "try; 5.1.1 double-checking the recipient's email address for typos or; 5.1.1 "
            "unnecessary spaces. Learn more at; 5.1.1  https://support.google.com/mail/?p=NoSuc"
            "hUser he11-20020a1709073d8b00b006e862100d5bsi2937572ejc.396 - gsmtp",
            id="multiline-kept-verbatim-not-lowercased",
        ),
        pytest.param(
            450,
            "blacklist\n8BITMIME\nSIZE 42",
            "transient: blacklist; 8BITMIME; SIZE 42",
            id="transient",
        ),
        pytest.param(
            450,
            "Client host rejected: cannot find your reverse hostname\n8BITMIME\nSIZE 42",
            "transient: Client host rejected: cannot find your reverse hostname; 8BITMIME; SIZE 42",
            id="transient-rdns",
        ),
        pytest.param(
            554,
            "Unknown Recipient (#5.1.1)",
            "permanent: Unknown Recipient (#5.1.1)",
            id="permanent",
        ),
        pytest.param(
            550,
            "550-5.1.1 first\r\n550 5.1.1 second",
            "permanent: 5.1.1 first; 5.1.1 second",
            id="raw-lines-lose-their-code-and-cr",
        ),
        pytest.param(550, "", "permanent: ", id="empty"),
    ],
)
def test_error_message_is_reachers_string(code, message, error_message):
    assert classify_reply(code, message).error_message == error_message


@pytest.mark.parametrize(
    ("lines", "description"),
    [
        pytest.param(("blacklist", "8BITMIME", "SIZE 42"), IP, id="blacklist"),
        pytest.param(
            ("Client host rejected: cannot find your reverse hostname", "8BITMIME", "SIZE 42"),
            RDNS,
            id="reverse-hostname",
        ),
        pytest.param(("foobar", "8BITMIME", "SIZE 42"), None, id="nothing-to-say"),
    ],
)
def test_description_of_a_transient_error(lines, description):
    verdict = classify_reply(450, "\n".join(lines))
    assert verdict.description == description
    assert verdict.outcome is (TMP if description is None else BLK)


@pytest.mark.parametrize(
    ("code", "message", "retryable"),
    [
        pytest.param(450, "4.2.0 Greylisted", True, id="greylisting"),
        pytest.param(421, "4.3.2 Please try again later", True, id="421"),
        pytest.param(452, "4.2.2 Mailbox full", False, id="full-inbox-is-an-answer"),
        pytest.param(451, "4.7.1 Relay access denied", False, id="blocked-wont-change-soon"),
        pytest.param(550, "5.1.1 User unknown", False, id="hard-fail"),
        pytest.param(250, "OK", False, id="accepted"),
    ],
)
def test_retryable_means_temporary(code, message, retryable):
    assert classify_reply(code, message).retryable is retryable


def test_verdict_keeps_code_and_message():
    verdict = classify_reply(550, "5.1.1 User unknown\nsecond line")
    assert (verdict.code, verdict.message) == (550, "5.1.1 User unknown\nsecond line")
