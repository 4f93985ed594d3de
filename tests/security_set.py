"""The attack and fault set (issue 15): each finding, and the tests that try it against the
running processes. `make security` runs exactly these (`pytest -m security`) and prints a
table — tried, handled, findings — from their outcomes; the same tests also run in `make test`.

A test named here that no longer exists is reported as "not tried", and the regular suite
fails on it (tests/test_security_set.py), so the set cannot shrink silently.
"""

from __future__ import annotations

ATTACKS: dict[str, list[str]] = {
    "Strangers lock customers out of case status": [
        "test_typed_flows.py::test_strangers_asking_for_a_status_lock_nobody_out",
        "test_integration_cases.py::test_a_strangers_guesses_lock_only_their_own_conversation",
        "test_integration_cases.py::test_three_failed_verifications_show_nothing",
    ],
    "Rasa token / secrets leak (logs, argv, responses)": [
        "test_launcher_supervision.py::test_no_secret_in_logs_or_command_lines",
    ],
    "A crashed child takes the stack down": [
        "test_launcher_supervision.py::test_a_killed_action_server_is_restarted",
        "test_launcher_supervision.py::test_a_killed_hub_is_restarted",
        "test_launcher_supervision.py::test_an_action_server_killed_mid_form_leaves_no_half",
        "test_launcher_supervision.py::test_a_killed_rasa_gets_an_apology_and_the_conversation",
        "test_launcher_supervision.py::test_killing_the_launcher_outright_takes_the_children_along",
        "test_launcher_supervision.py::test_a_busy_port_is_named_with_its_process",
        "test_hub_faults.py::test_rasa_unavailable",
    ],
    "Huge or endless request bodies": [
        "test_hub_hardening.py::test_a_20_mb_json_body_is_refused_by_its_length",
        "test_hub_hardening.py::test_a_chunked_body_without_length_is_cut_while_streaming",
    ],
    "Console lockout bypassed by parallel logins": [
        "test_hub_hardening.py::test_parallel_guesses_do_not_get_past_the_lockout",
        "test_hub_hardening.py::test_parallel_guesses_service_level",
        "test_console_auth.py::test_wrong_password_five_times_locks_with_the_same_answer",
    ],
    "Rate limits per socket only; uploads unlimited and unasked": [
        "test_rate_limits.py::",
        "test_ws_protocol.py::test_fifty_messages_a_second_are_limited_and_nothing_accepted_is_lost",
    ],
    "Sender id with a trailing newline": [
        "test_hub_hardening.py::test_a_sender_with_a_trailing_newline_is_refused_everywhere",
    ],
    "Huge conversation id gives a 500": [
        "test_hub_hardening.py::test_a_huge_conversation_id_is_a_client_error",
    ],
    "Binary first frame on the socket": [
        "test_hub_hardening.py::test_a_binary_first_frame_on_the_socket_closes_it_cleanly",
        "test_ws_protocol.py::test_bad_hello_is_refused",
    ],
    "Order numbers can be probed; guesses lock a real customer": [
        "test_integration_cases.py::test_unknown_and_real_order_numbers_get_the_same_answers",
        "test_integration_cases.py::test_cannot_peek_at_an_unverified_order",
    ],
    "Agents open any conversation, unaudited": [
        "test_privacy.py::test_agents_open_only_handed_over_conversations_and_every_view_is",
        "test_console_auth.py::test_agent_is_forbidden_admin_only_endpoints",
    ],
    "Predictable demo sender ids": [
        "test_demo_data.py::test_demo_sender_ids_differ_per_installation_and_cannot_be_guessed",
    ],
    "Public API description, missing nosniff and security headers": [
        "test_hub_hardening.py::test_no_public_api_description",
        "test_hub_hardening.py::test_security_headers_on_every_response",
    ],
    "Console login trusts any Origin equal to Host (DNS rebinding), CSRF": [
        "test_hub_hardening.py::test_console_login_refuses_a_rebound_domain",
        "test_console_auth.py::test_login_from_another_origin_is_refused",
        "test_console_auth.py::test_csrf_header_is_required_for_every_state_change",
        "test_ws_protocol.py::test_foreign_origin_cannot_open_the_socket",
    ],
    "A JPEG header followed by HTML accepted as a photo": [
        "test_hub_hardening.py::test_a_jpeg_header_followed_by_html_is_no_photo",
        "test_integration_cases.py::test_uploads_refuse_what_is_not_a_photo",
    ],
    "A retried turn after an action-server crash repeats a step": [
        "test_launcher_supervision.py::test_a_turn_retried_after_the_action_server_died_counts_once",
    ],
    "Waiting outside support hours gets an empty reply": [
        "test_queue_hours.py::test_waiting_outside_hours_is_answered_and_kept",
    ],
    "`bot users add` without a terminal crashes": [
        "test_hub_hardening.py::test_users_add_without_a_terminal_asks_for_the_environment_var",
    ],
    "Customer text shown to agents as HTML (XSS)": [
        "test_console_browser.py::test_customer_text_is_never_html_in_the_console",
    ],
    "Data rights: export and erase everywhere, retention": [
        "test_privacy.py::test_export_then_erase_a_customer_everywhere",
        "test_privacy.py::test_admin_exports_and_erases_from_the_console_with_an_audit_trail",
        "test_privacy.py::test_the_hub_applies_retention_by_itself",
        "test_privacy.py::test_bad_identifiers_get_a_clear_message",
    ],
    "Backups restore into a fresh database": [
        "test_backup.py::",
    ],
}


def finding_of(nodeid: str) -> str | None:
    """The finding a collected test belongs to (by file and test-name prefix), or None."""
    path, _, name = nodeid.partition("::")
    key = f"{path.rsplit('/', 1)[-1]}::{name}"
    for finding, patterns in ATTACKS.items():
        if any(key.startswith(p) for p in patterns):
            return finding
    return None
