// Admin tokens, scopes and the audit log against embedded SQLite.
import { tokenCases } from './tokens-cases.js';

tokenCases(async () => ({}));
