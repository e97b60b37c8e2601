//! Tests of REC_ENTER, the exits, RSI, realm PSCI and PSCI_COMPLETE, with scripted realms.
