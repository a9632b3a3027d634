/** Repository signing on PostgreSQL, a fresh schema dropped afterwards (test/suites/signing-suite.ts). */
import { runSigningSuite } from '../suites/signing-suite.ts';

runSigningSuite('postgres');
