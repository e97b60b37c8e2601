.section .text.fuzz_stubs, "ax"
.balign 16
.global fuzz_sysreg_stubs
fuzz_sysreg_stubs:
    .balign 16
    mrs x2, s3_0_c0_c0_0
    br x14
    msr s3_0_c0_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c0_5
    br x14
    msr s3_0_c0_c0_5, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c0_6
    br x14
    msr s3_0_c0_c0_6, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c4_0
    br x14
    msr s3_0_c0_c4_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c4_1
    br x14
    msr s3_0_c0_c4_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c4_4
    br x14
    msr s3_0_c0_c4_4, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c4_5
    br x14
    msr s3_0_c0_c4_5, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c5_0
    br x14
    msr s3_0_c0_c5_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c6_0
    br x14
    msr s3_0_c0_c6_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c6_1
    br x14
    msr s3_0_c0_c6_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c6_2
    br x14
    msr s3_0_c0_c6_2, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c7_0
    br x14
    msr s3_0_c0_c7_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c7_1
    br x14
    msr s3_0_c0_c7_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c7_2
    br x14
    msr s3_0_c0_c7_2, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c7_3
    br x14
    msr s3_0_c0_c7_3, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c3_7
    br x14
    msr s3_0_c0_c3_7, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c7_7
    br x14
    msr s3_0_c0_c7_7, x1
    br x14
    .balign 16
    mrs x2, s3_0_c0_c1_0
    br x14
    msr s3_0_c0_c1_0, x1
    br x14
    .balign 16
    mrs x2, s3_1_c0_c0_0
    br x14
    msr s3_1_c0_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_1_c0_c0_1
    br x14
    msr s3_1_c0_c0_1, x1
    br x14
    .balign 16
    mrs x2, s3_1_c0_c0_7
    br x14
    msr s3_1_c0_c0_7, x1
    br x14
    .balign 16
    mrs x2, s3_2_c0_c0_0
    br x14
    msr s3_2_c0_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c0_c0_1
    br x14
    msr s3_3_c0_c0_1, x1
    br x14
    .balign 16
    mrs x2, s3_3_c0_c0_7
    br x14
    msr s3_3_c0_c0_7, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c12_0
    br x14
    msr s3_3_c9_c12_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c12_1
    br x14
    msr s3_3_c9_c12_1, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c12_2
    br x14
    msr s3_3_c9_c12_2, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c12_3
    br x14
    msr s3_3_c9_c12_3, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c12_4
    br x14
    msr s3_3_c9_c12_4, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c12_5
    br x14
    msr s3_3_c9_c12_5, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c12_6
    br x14
    msr s3_3_c9_c12_6, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c13_0
    br x14
    msr s3_3_c9_c13_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c13_1
    br x14
    msr s3_3_c9_c13_1, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c13_2
    br x14
    msr s3_3_c9_c13_2, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c14_0
    br x14
    msr s3_3_c9_c14_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c9_c14_1
    br x14
    msr s3_0_c9_c14_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c9_c14_2
    br x14
    msr s3_0_c9_c14_2, x1
    br x14
    .balign 16
    mrs x2, s3_3_c9_c14_3
    br x14
    msr s3_3_c9_c14_3, x1
    br x14
    .balign 16
    mrs x2, s3_0_c9_c14_6
    br x14
    msr s3_0_c9_c14_6, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c8_0
    br x14
    msr s3_3_c14_c8_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c12_0
    br x14
    msr s3_3_c14_c12_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c15_7
    br x14
    msr s3_3_c14_c15_7, x1
    br x14
    .balign 16
    mrs x2, s2_0_c0_c2_2
    br x14
    msr s2_0_c0_c2_2, x1
    br x14
    .balign 16
    mrs x2, s2_0_c1_c0_4
    br x14
    msr s2_0_c1_c0_4, x1
    br x14
    .balign 16
    mrs x2, s2_0_c1_c1_4
    br x14
    msr s2_0_c1_c1_4, x1
    br x14
    .balign 16
    mrs x2, s2_0_c1_c3_4
    br x14
    msr s2_0_c1_c3_4, x1
    br x14
    .balign 16
    mrs x2, s2_0_c1_c4_4
    br x14
    msr s2_0_c1_c4_4, x1
    br x14
    .balign 16
    mrs x2, s2_0_c0_c0_4
    br x14
    msr s2_0_c0_c0_4, x1
    br x14
    .balign 16
    mrs x2, s2_0_c0_c0_5
    br x14
    msr s2_0_c0_c0_5, x1
    br x14
    .balign 16
    mrs x2, s2_0_c0_c0_6
    br x14
    msr s2_0_c0_c0_6, x1
    br x14
    .balign 16
    mrs x2, s2_0_c0_c0_7
    br x14
    msr s2_0_c0_c0_7, x1
    br x14
    .balign 16
    mrs x2, s2_3_c0_c1_0
    br x14
    msr s2_3_c0_c1_0, x1
    br x14
    .balign 16
    mrs x2, s2_3_c0_c4_0
    br x14
    msr s2_3_c0_c4_0, x1
    br x14
    .balign 16
    mrs x2, s2_0_c7_c8_6
    br x14
    msr s2_0_c7_c8_6, x1
    br x14
    .balign 16
    mrs x2, s2_0_c7_c14_6
    br x14
    msr s2_0_c7_c14_6, x1
    br x14
    .balign 16
    mrs x2, s2_0_c1_c0_0
    br x14
    msr s2_0_c1_c0_0, x1
    br x14
    .balign 16
    mrs x2, s2_0_c0_c6_2
    br x14
    msr s2_0_c0_c6_2, x1
    br x14
    .balign 16
    mrs x2, s2_0_c0_c2_0
    br x14
    msr s2_0_c0_c2_0, x1
    br x14
    .balign 16
    mrs x2, s2_1_c0_c1_0
    br x14
    msr s2_1_c0_c1_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c1_c2_1
    br x14
    msr s3_0_c1_c2_1, x1
    br x14
    .balign 16
    mrs x2, s3_3_c13_c2_0
    br x14
    msr s3_3_c13_c2_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c13_c2_1
    br x14
    msr s3_3_c13_c2_1, x1
    br x14
    .balign 16
    mrs x2, s3_3_c13_c2_3
    br x14
    msr s3_3_c13_c2_3, x1
    br x14
    .balign 16
    mrs x2, s3_3_c13_c4_0
    br x14
    msr s3_3_c13_c4_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c5_c3_0
    br x14
    msr s3_0_c5_c3_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c5_c3_1
    br x14
    msr s3_0_c5_c3_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c5_c4_0
    br x14
    msr s3_0_c5_c4_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c5_c4_2
    br x14
    msr s3_0_c5_c4_2, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c1_1
    br x14
    msr s3_0_c12_c1_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c10_c5_0
    br x14
    msr s3_0_c10_c5_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c10_c5_1
    br x14
    msr s3_0_c10_c5_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c10_c4_4
    br x14
    msr s3_0_c10_c4_4, x1
    br x14
    .balign 16
    mrs x2, s2_1_c9_c0_0
    br x14
    msr s2_1_c9_c0_0, x1
    br x14
    .balign 16
    mrs x2, s2_1_c9_c0_1
    br x14
    msr s2_1_c9_c0_1, x1
    br x14
    .balign 16
    mrs x2, s2_1_c9_c2_0
    br x14
    msr s2_1_c9_c2_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c13_c0_7
    br x14
    msr s3_0_c13_c0_7, x1
    br x14
    .balign 16
    mrs x2, s3_3_c13_c0_7
    br x14
    msr s3_3_c13_c0_7, x1
    br x14
    .balign 16
    mrs x2, s3_0_c2_c0_3
    br x14
    msr s3_0_c2_c0_3, x1
    br x14
    .balign 16
    mrs x2, s3_0_c1_c0_3
    br x14
    msr s3_0_c1_c0_3, x1
    br x14
    .balign 16
    mrs x2, s3_0_c10_c2_3
    br x14
    msr s3_0_c10_c2_3, x1
    br x14
    .balign 16
    mrs x2, s3_0_c10_c2_2
    br x14
    msr s3_0_c10_c2_2, x1
    br x14
    .balign 16
    mrs x2, s3_0_c10_c2_4
    br x14
    msr s3_0_c10_c2_4, x1
    br x14
    .balign 16
    mrs x2, s3_0_c10_c2_5
    br x14
    msr s3_0_c10_c2_5, x1
    br x14
    .balign 16
    mrs x2, s3_0_c2_c5_0
    br x14
    msr s3_0_c2_c5_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c2_c5_1
    br x14
    msr s3_0_c2_c5_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c4_c6_0
    br x14
    msr s3_0_c4_c6_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c12_0
    br x14
    msr s3_0_c12_c12_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c12_1
    br x14
    msr s3_0_c12_c12_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c12_2
    br x14
    msr s3_0_c12_c12_2, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c12_3
    br x14
    msr s3_0_c12_c12_3, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c11_1
    br x14
    msr s3_0_c12_c11_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c11_3
    br x14
    msr s3_0_c12_c11_3, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c11_5
    br x14
    msr s3_0_c12_c11_5, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c11_6
    br x14
    msr s3_0_c12_c11_6, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c11_7
    br x14
    msr s3_0_c12_c11_7, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c12_4
    br x14
    msr s3_0_c12_c12_4, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c12_5
    br x14
    msr s3_0_c12_c12_5, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c12_6
    br x14
    msr s3_0_c12_c12_6, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c12_7
    br x14
    msr s3_0_c12_c12_7, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c9_0
    br x14
    msr s3_0_c12_c9_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c8_4
    br x14
    msr s3_0_c12_c8_4, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c8_0
    br x14
    msr s3_0_c12_c8_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c12_c8_1
    br x14
    msr s3_0_c12_c8_1, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c3_1
    br x14
    msr s3_3_c14_c3_1, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c3_2
    br x14
    msr s3_3_c14_c3_2, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c3_0
    br x14
    msr s3_3_c14_c3_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c2_1
    br x14
    msr s3_3_c14_c2_1, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c2_2
    br x14
    msr s3_3_c14_c2_2, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c2_0
    br x14
    msr s3_3_c14_c2_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c14_c1_0
    br x14
    msr s3_0_c14_c1_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c0_0
    br x14
    msr s3_3_c14_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c0_2
    br x14
    msr s3_3_c14_c0_2, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c0_1
    br x14
    msr s3_3_c14_c0_1, x1
    br x14
    .balign 16
    mrs x2, s3_3_c14_c0_5
    br x14
    msr s3_3_c14_c0_5, x1
    br x14
    .balign 16
    mrs x2, s3_3_c13_c0_2
    br x14
    msr s3_3_c13_c0_2, x1
    br x14
    .balign 16
    mrs x2, s3_3_c13_c0_3
    br x14
    msr s3_3_c13_c0_3, x1
    br x14
    .balign 16
    mrs x2, s3_0_c13_c0_1
    br x14
    msr s3_0_c13_c0_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c5_c1_0
    br x14
    msr s3_0_c5_c1_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c5_c1_1
    br x14
    msr s3_0_c5_c1_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c10_c3_0
    br x14
    msr s3_0_c10_c3_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c1_c0_1
    br x14
    msr s3_0_c1_c0_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c7_c4_0
    br x14
    msr s3_0_c7_c4_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c4_c4_0
    br x14
    msr s3_3_c4_c4_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c4_c4_1
    br x14
    msr s3_3_c4_c4_1, x1
    br x14
    .balign 16
    mrs x2, s3_3_c4_c2_0
    br x14
    msr s3_3_c4_c2_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c4_c2_5
    br x14
    msr s3_3_c4_c2_5, x1
    br x14
    .balign 16
    mrs x2, s3_3_c4_c2_6
    br x14
    msr s3_3_c4_c2_6, x1
    br x14
    .balign 16
    mrs x2, s3_3_c4_c2_7
    br x14
    msr s3_3_c4_c2_7, x1
    br x14
    .balign 16
    mrs x2, s3_0_c4_c2_3
    br x14
    msr s3_0_c4_c2_3, x1
    br x14
    .balign 16
    mrs x2, s3_0_c4_c2_4
    br x14
    msr s3_0_c4_c2_4, x1
    br x14
    .balign 16
    mrs x2, s3_0_c4_c0_1
    br x14
    msr s3_0_c4_c0_1, x1
    br x14
    .balign 16
    mrs x2, s3_0_c4_c0_0
    br x14
    msr s3_0_c4_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c5_c2_0
    br x14
    msr s3_0_c5_c2_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c6_c0_0
    br x14
    msr s3_0_c6_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c4_c1_0
    br x14
    msr s3_0_c4_c1_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c2_c4_0
    br x14
    msr s3_3_c2_c4_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c2_c4_1
    br x14
    msr s3_3_c2_c4_1, x1
    br x14
    .balign 16
    mrs x2, s3_4_c1_c1_0
    br x14
    msr s3_4_c1_c1_0, x1
    br x14
    .balign 16
    mrs x2, s3_4_c12_c0_0
    br x14
    msr s3_4_c12_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_6_c1_c1_0
    br x14
    msr s3_6_c1_c1_0, x1
    br x14
    .balign 16
    mrs x2, s3_4_c2_c1_0
    br x14
    msr s3_4_c2_c1_0, x1
    br x14
    .balign 16
    mrs x2, s3_4_c12_c11_0
    br x14
    msr s3_4_c12_c11_0, x1
    br x14
    .balign 16
    mrs x2, s3_4_c14_c1_0
    br x14
    msr s3_4_c14_c1_0, x1
    br x14
    .balign 16
    mrs x2, s3_4_c1_c1_1
    br x14
    msr s3_4_c1_c1_1, x1
    br x14
    .balign 16
    mrs x2, s3_4_c4_c1_0
    br x14
    msr s3_4_c4_c1_0, x1
    br x14
    .balign 16
    mrs x2, s3_5_c1_c0_0
    br x14
    msr s3_5_c1_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_0_c15_c0_0
    br x14
    msr s3_0_c15_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_1_c15_c2_0
    br x14
    msr s3_1_c15_c2_0, x1
    br x14
    .balign 16
    mrs x2, s3_3_c15_c0_0
    br x14
    msr s3_3_c15_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_7_c11_c0_0
    br x14
    msr s3_7_c11_c0_0, x1
    br x14
    .balign 16
    mrs x2, s3_2_c5_c4_3
    br x14
    msr s3_2_c5_c4_3, x1
    br x14
    .balign 16
    mrs x2, s2_7_c15_c15_7
    br x14
    msr s2_7_c15_c15_7, x1
    br x14
