; ModuleID = "vtpu"
target triple = "x86_64-unknown-linux-gnu"
target datalayout = ""

define i64 @"vtpu_entry"(ptr %"ctx") nounwind
{
entry:
  %"r0" = alloca i64
  %"r1" = alloca i64
  %"r2" = alloca i64
  %"r3" = alloca i64
  %"r4" = alloca i64
  %"r5" = alloca i64
  %"r6" = alloca i64
  %"r7" = alloca i64
  %"r8" = alloca i64
  %"r9" = alloca i64
  %"r10" = alloca i64
  %"r11" = alloca i64
  %"r12" = alloca i64
  %"r13" = alloca i64
  %"r14" = alloca i64
  %"r15" = alloca i64
  %"p0" = alloca i128
  %"p1" = alloca i128
  %"p2" = alloca i128
  %"p3" = alloca i128
  %"p4" = alloca i128
  %"p5" = alloca i128
  %"p6" = alloca i128
  %"p7" = alloca i128
  %"v0" = alloca <64 x i8>
  %"v1" = alloca <64 x i8>
  %"v2" = alloca <64 x i8>
  %"v3" = alloca <64 x i8>
  %"v4" = alloca <64 x i8>
  %"v5" = alloca <64 x i8>
  %"v6" = alloca <64 x i8>
  %"v7" = alloca <64 x i8>
  %"v8" = alloca <64 x i8>
  %"v9" = alloca <64 x i8>
  %"v10" = alloca <64 x i8>
  %"v11" = alloca <64 x i8>
  %"v12" = alloca <64 x i8>
  %"v13" = alloca <64 x i8>
  %"v14" = alloca <64 x i8>
  %"v15" = alloca <64 x i8>
  %"v16" = alloca <64 x i8>
  %"v17" = alloca <64 x i8>
  %"v18" = alloca <64 x i8>
  %"v19" = alloca <64 x i8>
  %"v20" = alloca <64 x i8>
  %"v21" = alloca <64 x i8>
  %"v22" = alloca <64 x i8>
  %"v23" = alloca <64 x i8>
  %"v24" = alloca <64 x i8>
  %"v25" = alloca <64 x i8>
  %"v26" = alloca <64 x i8>
  %"v27" = alloca <64 x i8>
  %"v28" = alloca <64 x i8>
  %"v29" = alloca <64 x i8>
  %"v30" = alloca <64 x i8>
  %"v31" = alloca <64 x i8>
  %"m0" = alloca <64 x i8>
  %"m1" = alloca <64 x i8>
  %"m2" = alloca <64 x i8>
  %"m3" = alloca <64 x i8>
  %"ml0" = alloca i64
  %"ml1" = alloca i64
  %"ml2" = alloca i64
  %"ml3" = alloca i64
  %"flags" = alloca i64
  %"mru0" = alloca i1
  %"mru1" = alloca i1
  %"mru2" = alloca i1
  %"mru3" = alloca i1
  %"mru4" = alloca i1
  %"mru5" = alloca i1
  %"mru6" = alloca i1
  %"mru7" = alloca i1
  %"tptr0" = alloca ptr
  %"tptr1" = alloca ptr
  %"tptr2" = alloca ptr
  %"tptr3" = alloca ptr
  %"tptr4" = alloca ptr
  %"tptr5" = alloca ptr
  %"tptr6" = alloca ptr
  %"tptr7" = alloca ptr
  %"tsize0" = alloca i64
  %"tsize1" = alloca i64
  %"tsize2" = alloca i64
  %"tsize3" = alloca i64
  %"tsize4" = alloca i64
  %"tsize5" = alloca i64
  %"tsize6" = alloca i64
  %"tsize7" = alloca i64
  %"tset0" = alloca i64
  %"tset1" = alloca i64
  %"tset2" = alloca i64
  %"tset3" = alloca i64
  %"tset4" = alloca i64
  %"tset5" = alloca i64
  %"tset6" = alloca i64
  %"tset7" = alloca i64
  %"tidx0" = alloca i64
  %"tidx1" = alloca i64
  %"tidx2" = alloca i64
  %"tidx3" = alloca i64
  %"tidx4" = alloca i64
  %"tidx5" = alloca i64
  %"tidx6" = alloca i64
  %"tidx7" = alloca i64
  %"rrec0" = alloca i1
  %"rrec1" = alloca i1
  %"rrec2" = alloca i1
  %"rrec3" = alloca i1
  %"rrec4" = alloca i1
  %"rrec5" = alloca i1
  %"rrec6" = alloca i1
  %"rrec7" = alloca i1
  %"wrec0" = alloca i1
  %"wrec1" = alloca i1
  %"wrec2" = alloca i1
  %"wrec3" = alloca i1
  %"wrec4" = alloca i1
  %"wrec5" = alloca i1
  %"wrec6" = alloca i1
  %"wrec7" = alloca i1
  %"fasthits" = alloca i64
  %"trslow" = alloca i64
  %"steps" = alloca i64
  %"cnt0" = alloca i64
  %"cnt1" = alloca i64
  %"cnt2" = alloca i64
  %"cnt3" = alloca i64
  %"cstat_messages" = alloca i64
  %"cstat_bytes" = alloca i64
  %"cstat_routed" = alloca i64
  %"cstat_hops" = alloca i64
  %"cstat_barriers" = alloca i64
  %"cstat_collectives" = alloca i64
  store i64 0, i64* %"cstat_messages"
  store i64 0, i64* %"cstat_bytes"
  store i64 0, i64* %"cstat_routed"
  store i64 0, i64* %"cstat_hops"
  store i64 0, i64* %"cstat_barriers"
  store i64 0, i64* %"cstat_collectives"
  %"cseq0" = alloca i64
  store i64 0, i64* %"cseq0"
  %"cchosen" = alloca i64
  %"cspin" = alloca i64
  %"ring" = alloca [16 x <64 x i8>], align 64
  %"ringlen" = alloca [16 x i64]
  %"rhead" = alloca i64
  %"rtail" = alloca i64
  store i64 0, i64* %"rhead"
  store i64 0, i64* %"rtail"
  %".12" = getelementptr inbounds i8, ptr %"ctx", i64 3040
  store [16 x <64 x i8>]* %"ring", ptr %".12", align 1
  %".14" = getelementptr inbounds i8, ptr %"ctx", i64 3048
  store i64* %"rhead", ptr %".14", align 1
  %".16" = getelementptr inbounds i8, ptr %"ctx", i64 3056
  store i64* %"rtail", ptr %".16", align 1
  %".18" = getelementptr inbounds i8, ptr %"ctx", i64 2560
  %".19" = load <64 x i8>, ptr %".18", align 1
  store <64 x i8> %".19", <64 x i8>* %"m0"
  %".21" = getelementptr inbounds i8, ptr %"ctx", i64 448
  %".22" = load i64, ptr %".21", align 1
  store i64 %".22", i64* %"ml0"
  %".24" = getelementptr inbounds i8, ptr %"ctx", i64 2752
  %".25" = load <64 x i8>, ptr %".24", align 1
  store <64 x i8> %".25", <64 x i8>* %"m3"
  %".27" = getelementptr inbounds i8, ptr %"ctx", i64 472
  %".28" = load i64, ptr %".27", align 1
  store i64 %".28", i64* %"ml3"
  %".30" = getelementptr inbounds i8, ptr %"ctx", i64 128
  %".31" = load i128, ptr %".30", align 1
  store i128 %".31", i128* %"p0"
  %".33" = getelementptr inbounds i8, ptr %"ctx", i64 144
  %".34" = load i128, ptr %".33", align 1
  store i128 %".34", i128* %"p1"
  %".36" = getelementptr inbounds i8, ptr %"ctx", i64 160
  %".37" = load i128, ptr %".36", align 1
  store i128 %".37", i128* %"p2"
  %".39" = getelementptr inbounds i8, ptr %"ctx", i64 224
  %".40" = load i128, ptr %".39", align 1
  store i128 %".40", i128* %"p6"
  %".42" = getelementptr inbounds i8, ptr %"ctx", i64 0
  %".43" = load i64, ptr %".42", align 1
  store i64 %".43", i64* %"r0"
  %".45" = getelementptr inbounds i8, ptr %"ctx", i64 8
  %".46" = load i64, ptr %".45", align 1
  store i64 %".46", i64* %"r1"
  %".48" = getelementptr inbounds i8, ptr %"ctx", i64 16
  %".49" = load i64, ptr %".48", align 1
  store i64 %".49", i64* %"r2"
  %".51" = getelementptr inbounds i8, ptr %"ctx", i64 24
  %".52" = load i64, ptr %".51", align 1
  store i64 %".52", i64* %"r3"
  %".54" = getelementptr inbounds i8, ptr %"ctx", i64 32
  %".55" = load i64, ptr %".54", align 1
  store i64 %".55", i64* %"r4"
  %".57" = getelementptr inbounds i8, ptr %"ctx", i64 40
  %".58" = load i64, ptr %".57", align 1
  store i64 %".58", i64* %"r5"
  %".60" = getelementptr inbounds i8, ptr %"ctx", i64 48
  %".61" = load i64, ptr %".60", align 1
  store i64 %".61", i64* %"r6"
  %".63" = getelementptr inbounds i8, ptr %"ctx", i64 56
  %".64" = load i64, ptr %".63", align 1
  store i64 %".64", i64* %"r7"
  %".66" = getelementptr inbounds i8, ptr %"ctx", i64 64
  %".67" = load i64, ptr %".66", align 1
  store i64 %".67", i64* %"r8"
  %".69" = getelementptr inbounds i8, ptr %"ctx", i64 72
  %".70" = load i64, ptr %".69", align 1
  store i64 %".70", i64* %"r9"
  %".72" = getelementptr inbounds i8, ptr %"ctx", i64 104
  %".73" = load i64, ptr %".72", align 1
  store i64 %".73", i64* %"r13"
  %".75" = getelementptr inbounds i8, ptr %"ctx", i64 112
  %".76" = load i64, ptr %".75", align 1
  store i64 %".76", i64* %"r14"
  %".78" = getelementptr inbounds i8, ptr %"ctx", i64 120
  %".79" = load i64, ptr %".78", align 1
  store i64 %".79", i64* %"r15"
  %".81" = getelementptr inbounds i8, ptr %"ctx", i64 512
  %".82" = load <64 x i8>, ptr %".81", align 1
  store <64 x i8> %".82", <64 x i8>* %"v0"
  %".84" = getelementptr inbounds i8, ptr %"ctx", i64 576
  %".85" = load <64 x i8>, ptr %".84", align 1
  store <64 x i8> %".85", <64 x i8>* %"v1"
  %".87" = getelementptr inbounds i8, ptr %"ctx", i64 640
  %".88" = load <64 x i8>, ptr %".87", align 1
  store <64 x i8> %".88", <64 x i8>* %"v2"
  %".90" = getelementptr inbounds i8, ptr %"ctx", i64 704
  %".91" = load <64 x i8>, ptr %".90", align 1
  store <64 x i8> %".91", <64 x i8>* %"v3"
  %".93" = getelementptr inbounds i8, ptr %"ctx", i64 768
  %".94" = load <64 x i8>, ptr %".93", align 1
  store <64 x i8> %".94", <64 x i8>* %"v4"
  %".96" = getelementptr inbounds i8, ptr %"ctx", i64 832
  %".97" = load <64 x i8>, ptr %".96", align 1
  store <64 x i8> %".97", <64 x i8>* %"v5"
  %".99" = getelementptr inbounds i8, ptr %"ctx", i64 896
  %".100" = load <64 x i8>, ptr %".99", align 1
  store <64 x i8> %".100", <64 x i8>* %"v6"
  %".102" = getelementptr inbounds i8, ptr %"ctx", i64 960
  %".103" = load <64 x i8>, ptr %".102", align 1
  store <64 x i8> %".103", <64 x i8>* %"v7"
  %".105" = getelementptr inbounds i8, ptr %"ctx", i64 1024
  %".106" = load <64 x i8>, ptr %".105", align 1
  store <64 x i8> %".106", <64 x i8>* %"v8"
  %".108" = getelementptr inbounds i8, ptr %"ctx", i64 1152
  %".109" = load <64 x i8>, ptr %".108", align 1
  store <64 x i8> %".109", <64 x i8>* %"v10"
  %".111" = getelementptr inbounds i8, ptr %"ctx", i64 1216
  %".112" = load <64 x i8>, ptr %".111", align 1
  store <64 x i8> %".112", <64 x i8>* %"v11"
  %".114" = getelementptr inbounds i8, ptr %"ctx", i64 1280
  %".115" = load <64 x i8>, ptr %".114", align 1
  store <64 x i8> %".115", <64 x i8>* %"v12"
  %".117" = getelementptr inbounds i8, ptr %"ctx", i64 1536
  %".118" = load <64 x i8>, ptr %".117", align 1
  store <64 x i8> %".118", <64 x i8>* %"v16"
  %".120" = getelementptr inbounds i8, ptr %"ctx", i64 1664
  %".121" = load <64 x i8>, ptr %".120", align 1
  store <64 x i8> %".121", <64 x i8>* %"v18"
  %".123" = getelementptr inbounds i8, ptr %"ctx", i64 1728
  %".124" = load <64 x i8>, ptr %".123", align 1
  store <64 x i8> %".124", <64 x i8>* %"v19"
  %".126" = getelementptr inbounds i8, ptr %"ctx", i64 1792
  %".127" = load <64 x i8>, ptr %".126", align 1
  store <64 x i8> %".127", <64 x i8>* %"v20"
  %".129" = getelementptr inbounds i8, ptr %"ctx", i64 2048
  %".130" = load <64 x i8>, ptr %".129", align 1
  store <64 x i8> %".130", <64 x i8>* %"v24"
  %".132" = getelementptr inbounds i8, ptr %"ctx", i64 2112
  %".133" = load <64 x i8>, ptr %".132", align 1
  store <64 x i8> %".133", <64 x i8>* %"v25"
  %".135" = getelementptr inbounds i8, ptr %"ctx", i64 2176
  %".136" = load <64 x i8>, ptr %".135", align 1
  store <64 x i8> %".136", <64 x i8>* %"v26"
  %".138" = getelementptr inbounds i8, ptr %"ctx", i64 2368
  %".139" = load <64 x i8>, ptr %".138", align 1
  store <64 x i8> %".139", <64 x i8>* %"v29"
  %".141" = getelementptr inbounds i8, ptr %"ctx", i64 2496
  %".142" = load <64 x i8>, ptr %".141", align 1
  store <64 x i8> %".142", <64 x i8>* %"v31"
  store i1 0, i1* %"mru0"
  store i1 0, i1* %"mru1"
  store i1 0, i1* %"mru2"
  store i1 0, i1* %"mru6"
  store i1 0, i1* %"rrec0"
  store i1 0, i1* %"wrec0"
  store i1 0, i1* %"rrec1"
  store i1 0, i1* %"wrec1"
  store i1 0, i1* %"rrec2"
  store i1 0, i1* %"wrec2"
  store i1 0, i1* %"rrec6"
  store i1 0, i1* %"wrec6"
  %".156" = getelementptr inbounds i8, ptr %"ctx", i64 256
  %".157" = load i64, ptr %".156", align 1
  store i64 %".157", i64* %"flags"
  %".159" = getelementptr inbounds i8, ptr %"ctx", i64 344
  %".160" = load ptr, ptr %".159", align 1
  store i64 0, i64* %"cnt0"
  store i64 0, i64* %"cnt1"
  store i64 0, i64* %"cnt2"
  store i64 0, i64* %"cnt3"
  store i64 0, i64* %"fasthits"
  store i64 0, i64* %"trslow"
  store i64 0, i64* %"steps"
  store ptr null, ptr %"tptr0"
  store i64 0, i64* %"tsize0"
  store i64 0, i64* %"tset0"
  store i64 0, i64* %"tidx0"
  store ptr null, ptr %"tptr1"
  store i64 0, i64* %"tsize1"
  store i64 0, i64* %"tset1"
  store i64 0, i64* %"tidx1"
  store ptr null, ptr %"tptr2"
  store i64 0, i64* %"tsize2"
  store i64 0, i64* %"tset2"
  store i64 0, i64* %"tidx2"
  store ptr null, ptr %"tptr3"
  store i64 0, i64* %"tsize3"
  store i64 0, i64* %"tset3"
  store i64 0, i64* %"tidx3"
  store ptr null, ptr %"tptr4"
  store i64 0, i64* %"tsize4"
  store i64 0, i64* %"tset4"
  store i64 0, i64* %"tidx4"
  store ptr null, ptr %"tptr5"
  store i64 0, i64* %"tsize5"
  store i64 0, i64* %"tset5"
  store i64 0, i64* %"tidx5"
  store ptr null, ptr %"tptr6"
  store i64 0, i64* %"tsize6"
  store i64 0, i64* %"tset6"
  store i64 0, i64* %"tidx6"
  store ptr null, ptr %"tptr7"
  store i64 0, i64* %"tsize7"
  store i64 0, i64* %"tset7"
  store i64 0, i64* %"tidx7"
  %".200" = getelementptr inbounds i8, ptr %"ctx", i64 320
  %".201" = load i64, ptr %".200", align 1
  %".202" = getelementptr inbounds i8, ptr %"ctx", i64 336
  %".203" = load ptr, ptr %".202", align 1
  %".204" = getelementptr inbounds i8, ptr %"ctx", i64 328
  %".205" = load ptr, ptr %".204", align 1
  %".206" = call i64 @"llvm.readcyclecounter"()
  %".207" = getelementptr inbounds i8, ptr %"ctx", i64 392
  store i64 %".206", ptr %".207", align 1
  br label %"siw0"
siw0:
  %".210" = load i64, i64* %"cnt0"
  %".211" = add i64 %".210", 1
  store i64 %".211", i64* %"cnt0"
  store i128 0, i128* %"p0"
  store i1 0, i1* %"mru0"
  store i1 0, i1* %"rrec0"
  store i1 0, i1* %"wrec0"
  store i128 1, i128* %"p1"
  store i1 0, i1* %"mru1"
  store i1 0, i1* %"rrec1"
  store i1 0, i1* %"wrec1"
  store i128 2, i128* %"p2"
  store i1 0, i1* %"mru2"
  store i1 0, i1* %"rrec2"
  store i1 0, i1* %"wrec2"
  store i128 8, i128* %"p6"
  store i1 0, i1* %"mru6"
  store i1 0, i1* %"rrec6"
  store i1 0, i1* %"wrec6"
  %".229" = load i1, i1* %"mru0"
  %".230" = load i64, i64* %"fasthits"
  %".231" = add i64 %".230", 1
  store i64 %".231", i64* %"fasthits"
  br i1 %".229", label %"trfast_4_1", label %"trslow_4_1", !prof !0
siw24:
  %".395" = load atomic i32, ptr %".203" monotonic, align 4
  %".396" = icmp ne i32 %".395", 0
  br i1 %".396", label %"fault", label %"go24", !prof !1
siw26:
  %".413" = load i64, i64* %"cnt2"
  %".414" = add i64 %".413", 1
  store i64 %".414", i64* %"cnt2"
  %".416" = load i64, i64* %"r13"
  %".417" = add i64 %".416", 1
  store i64 %".417", i64* %"r13"
  br label %"siw27"
siw27:
  %".420" = load atomic i32, ptr %".203" monotonic, align 4
  %".421" = icmp ne i32 %".420", 0
  br i1 %".421", label %"fault", label %"go27", !prof !1
end:
  %".1382" = load <64 x i8>, <64 x i8>* %"v18"
  %".1383" = bitcast <64 x i8> %".1382" to <16 x float>
  %".1384" = bitcast <16 x float> %".1383" to <16 x i32>
  %".1385" = call <16 x i1> @"llvm.x86.avx512.mask.cmp.ps.512"(<16 x float> %".1383", <16 x float> %".1383", i32 3, <16 x i1> <i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1>, i32 4)
  %".1386" = select  <16 x i1> %".1385", <16 x i32> <i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344>, <16 x i32> %".1384"
  %".1387" = bitcast <16 x i32> %".1386" to <16 x float>
  %".1388" = bitcast <16 x float> %".1387" to <64 x i8>
  store <64 x i8> %".1388", <64 x i8>* %"v18"
  %".1390" = load <64 x i8>, <64 x i8>* %"v25"
  %".1391" = bitcast <64 x i8> %".1390" to <16 x float>
  %".1392" = bitcast <16 x float> %".1391" to <16 x i32>
  %".1393" = call <16 x i1> @"llvm.x86.avx512.mask.cmp.ps.512"(<16 x float> %".1391", <16 x float> %".1391", i32 3, <16 x i1> <i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1>, i32 4)
  %".1394" = select  <16 x i1> %".1393", <16 x i32> <i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344>, <16 x i32> %".1392"
  %".1395" = bitcast <16 x i32> %".1394" to <16 x float>
  %".1396" = bitcast <16 x float> %".1395" to <64 x i8>
  store <64 x i8> %".1396", <64 x i8>* %"v25"
  %".1398" = getelementptr inbounds i8, ptr %"ctx", i64 280
  store i64 0, ptr %".1398", align 1
  %".1400" = getelementptr inbounds i8, ptr %"ctx", i64 288
  store i64 47, ptr %".1400", align 1
  %".1402" = getelementptr inbounds i8, ptr %"ctx", i64 296
  store i64 0, ptr %".1402", align 1
  %".1404" = getelementptr inbounds i8, ptr %"ctx", i64 304
  store i64 1, ptr %".1404", align 1
  br label %"exit"
exit:
  %".1407" = load <64 x i8>, <64 x i8>* %"m0"
  %".1408" = getelementptr inbounds i8, ptr %"ctx", i64 2560
  store <64 x i8> %".1407", ptr %".1408", align 1
  %".1410" = load i64, i64* %"ml0"
  %".1411" = getelementptr inbounds i8, ptr %"ctx", i64 448
  store i64 %".1410", ptr %".1411", align 1
  %".1413" = load <64 x i8>, <64 x i8>* %"m3"
  %".1414" = getelementptr inbounds i8, ptr %"ctx", i64 2752
  store <64 x i8> %".1413", ptr %".1414", align 1
  %".1416" = load i64, i64* %"ml3"
  %".1417" = getelementptr inbounds i8, ptr %"ctx", i64 472
  store i64 %".1416", ptr %".1417", align 1
  %".1419" = load i128, i128* %"p0"
  %".1420" = getelementptr inbounds i8, ptr %"ctx", i64 128
  store i128 %".1419", ptr %".1420", align 1
  %".1422" = load i128, i128* %"p1"
  %".1423" = getelementptr inbounds i8, ptr %"ctx", i64 144
  store i128 %".1422", ptr %".1423", align 1
  %".1425" = load i128, i128* %"p2"
  %".1426" = getelementptr inbounds i8, ptr %"ctx", i64 160
  store i128 %".1425", ptr %".1426", align 1
  %".1428" = load i128, i128* %"p6"
  %".1429" = getelementptr inbounds i8, ptr %"ctx", i64 224
  store i128 %".1428", ptr %".1429", align 1
  %".1431" = load i64, i64* %"r0"
  %".1432" = getelementptr inbounds i8, ptr %"ctx", i64 0
  store i64 %".1431", ptr %".1432", align 1
  %".1434" = load i64, i64* %"r1"
  %".1435" = getelementptr inbounds i8, ptr %"ctx", i64 8
  store i64 %".1434", ptr %".1435", align 1
  %".1437" = load i64, i64* %"r2"
  %".1438" = getelementptr inbounds i8, ptr %"ctx", i64 16
  store i64 %".1437", ptr %".1438", align 1
  %".1440" = load i64, i64* %"r3"
  %".1441" = getelementptr inbounds i8, ptr %"ctx", i64 24
  store i64 %".1440", ptr %".1441", align 1
  %".1443" = load i64, i64* %"r4"
  %".1444" = getelementptr inbounds i8, ptr %"ctx", i64 32
  store i64 %".1443", ptr %".1444", align 1
  %".1446" = load i64, i64* %"r5"
  %".1447" = getelementptr inbounds i8, ptr %"ctx", i64 40
  store i64 %".1446", ptr %".1447", align 1
  %".1449" = load i64, i64* %"r6"
  %".1450" = getelementptr inbounds i8, ptr %"ctx", i64 48
  store i64 %".1449", ptr %".1450", align 1
  %".1452" = load i64, i64* %"r7"
  %".1453" = getelementptr inbounds i8, ptr %"ctx", i64 56
  store i64 %".1452", ptr %".1453", align 1
  %".1455" = load i64, i64* %"r8"
  %".1456" = getelementptr inbounds i8, ptr %"ctx", i64 64
  store i64 %".1455", ptr %".1456", align 1
  %".1458" = load i64, i64* %"r9"
  %".1459" = getelementptr inbounds i8, ptr %"ctx", i64 72
  store i64 %".1458", ptr %".1459", align 1
  %".1461" = load i64, i64* %"r13"
  %".1462" = getelementptr inbounds i8, ptr %"ctx", i64 104
  store i64 %".1461", ptr %".1462", align 1
  %".1464" = load i64, i64* %"r14"
  %".1465" = getelementptr inbounds i8, ptr %"ctx", i64 112
  store i64 %".1464", ptr %".1465", align 1
  %".1467" = load i64, i64* %"r15"
  %".1468" = getelementptr inbounds i8, ptr %"ctx", i64 120
  store i64 %".1467", ptr %".1468", align 1
  %".1470" = load <64 x i8>, <64 x i8>* %"v0"
  %".1471" = getelementptr inbounds i8, ptr %"ctx", i64 512
  store <64 x i8> %".1470", ptr %".1471", align 1
  %".1473" = load <64 x i8>, <64 x i8>* %"v1"
  %".1474" = getelementptr inbounds i8, ptr %"ctx", i64 576
  store <64 x i8> %".1473", ptr %".1474", align 1
  %".1476" = load <64 x i8>, <64 x i8>* %"v2"
  %".1477" = getelementptr inbounds i8, ptr %"ctx", i64 640
  store <64 x i8> %".1476", ptr %".1477", align 1
  %".1479" = load <64 x i8>, <64 x i8>* %"v3"
  %".1480" = getelementptr inbounds i8, ptr %"ctx", i64 704
  store <64 x i8> %".1479", ptr %".1480", align 1
  %".1482" = load <64 x i8>, <64 x i8>* %"v4"
  %".1483" = getelementptr inbounds i8, ptr %"ctx", i64 768
  store <64 x i8> %".1482", ptr %".1483", align 1
  %".1485" = load <64 x i8>, <64 x i8>* %"v5"
  %".1486" = getelementptr inbounds i8, ptr %"ctx", i64 832
  store <64 x i8> %".1485", ptr %".1486", align 1
  %".1488" = load <64 x i8>, <64 x i8>* %"v6"
  %".1489" = getelementptr inbounds i8, ptr %"ctx", i64 896
  store <64 x i8> %".1488", ptr %".1489", align 1
  %".1491" = load <64 x i8>, <64 x i8>* %"v7"
  %".1492" = getelementptr inbounds i8, ptr %"ctx", i64 960
  store <64 x i8> %".1491", ptr %".1492", align 1
  %".1494" = load <64 x i8>, <64 x i8>* %"v8"
  %".1495" = getelementptr inbounds i8, ptr %"ctx", i64 1024
  store <64 x i8> %".1494", ptr %".1495", align 1
  %".1497" = load <64 x i8>, <64 x i8>* %"v10"
  %".1498" = getelementptr inbounds i8, ptr %"ctx", i64 1152
  store <64 x i8> %".1497", ptr %".1498", align 1
  %".1500" = load <64 x i8>, <64 x i8>* %"v18"
  %".1501" = getelementptr inbounds i8, ptr %"ctx", i64 1664
  store <64 x i8> %".1500", ptr %".1501", align 1
  %".1503" = load <64 x i8>, <64 x i8>* %"v25"
  %".1504" = getelementptr inbounds i8, ptr %"ctx", i64 2112
  store <64 x i8> %".1503", ptr %".1504", align 1
  %".1506" = load <64 x i8>, <64 x i8>* %"v26"
  %".1507" = getelementptr inbounds i8, ptr %"ctx", i64 2176
  store <64 x i8> %".1506", ptr %".1507", align 1
  %".1509" = load <64 x i8>, <64 x i8>* %"v29"
  %".1510" = getelementptr inbounds i8, ptr %"ctx", i64 2368
  store <64 x i8> %".1509", ptr %".1510", align 1
  %".1512" = load i64, i64* %"flags"
  %".1513" = getelementptr inbounds i8, ptr %"ctx", i64 256
  store i64 %".1512", ptr %".1513", align 1
  %".1515" = getelementptr inbounds i8, ptr %"ctx", i64 344
  %".1516" = load ptr, ptr %".1515", align 1
  %".1517" = load i64, i64* %"cnt0"
  %".1518" = getelementptr i64, ptr %".1516", i64 0
  store i64 %".1517", ptr %".1518", align 8
  %".1520" = load i64, i64* %"cnt1"
  %".1521" = getelementptr i64, ptr %".1516", i64 1
  store i64 %".1520", ptr %".1521", align 8
  %".1523" = load i64, i64* %"cnt2"
  %".1524" = getelementptr i64, ptr %".1516", i64 2
  store i64 %".1523", ptr %".1524", align 8
  %".1526" = load i64, i64* %"cnt3"
  %".1527" = getelementptr i64, ptr %".1516", i64 3
  store i64 %".1526", ptr %".1527", align 8
  %".1529" = load i64, i64* %"fasthits"
  %".1530" = load i64, i64* %"trslow"
  %".1531" = sub i64 %".1529", %".1530"
  %".1532" = getelementptr inbounds i8, ptr %"ctx", i64 312
  store i64 %".1531", ptr %".1532", align 1
  %".1534" = load i64, i64* %"cstat_messages"
  %".1535" = getelementptr inbounds i8, ptr %"ctx", i64 2944
  store i64 %".1534", ptr %".1535", align 1
  %".1537" = load i64, i64* %"cstat_bytes"
  %".1538" = getelementptr inbounds i8, ptr %"ctx", i64 2952
  store i64 %".1537", ptr %".1538", align 1
  %".1540" = load i64, i64* %"cstat_routed"
  %".1541" = getelementptr inbounds i8, ptr %"ctx", i64 2960
  store i64 %".1540", ptr %".1541", align 1
  %".1543" = load i64, i64* %"cstat_hops"
  %".1544" = getelementptr inbounds i8, ptr %"ctx", i64 2968
  store i64 %".1543", ptr %".1544", align 1
  %".1546" = load i64, i64* %"cstat_barriers"
  %".1547" = getelementptr inbounds i8, ptr %"ctx", i64 2976
  store i64 %".1546", ptr %".1547", align 1
  %".1549" = load i64, i64* %"cstat_collectives"
  %".1550" = getelementptr inbounds i8, ptr %"ctx", i64 2984
  store i64 %".1549", ptr %".1550", align 1
  %".1552" = call i64 @"llvm.readcyclecounter"()
  %".1553" = getelementptr inbounds i8, ptr %"ctx", i64 400
  store i64 %".1552", ptr %".1553", align 1
  %".1555" = getelementptr inbounds i8, ptr %"ctx", i64 280
  %".1556" = load i64, ptr %".1555", align 1
  ret i64 %".1556"
dispatch24:
  %".934" = load i1, i1* %"mru1"
  %".935" = and i1 1, %".934"
  %".936" = load i1, i1* %"mru2"
  %".937" = and i1 %".935", %".936"
  br i1 %".937", label %"fsiw24", label %"siw24"
fsiw24:
  %".939" = load atomic i32, ptr %".203" monotonic, align 4
  %".940" = icmp ne i32 %".939", 0
  br i1 %".940", label %"fault", label %"go24.1", !prof !1
fsiw26:
  %".957" = load i64, i64* %"cnt2"
  %".958" = add i64 %".957", 1
  store i64 %".958", i64* %"cnt2"
  %".960" = load i64, i64* %"r13"
  %".961" = add i64 %".960", 1
  store i64 %".961", i64* %"r13"
  br label %"fsiw27"
fsiw27:
  %".964" = load atomic i32, ptr %".203" monotonic, align 4
  %".965" = icmp ne i32 %".964", 0
  br i1 %".965", label %"fault", label %"go27.1", !prof !1
trslow_4_1:
  %".235" = load i64, i64* %"trslow"
  %".236" = add i64 %".235", 1
  store i64 %".236", i64* %"trslow"
  %".238" = load i128, i128* %"p0"
  %".239" = trunc i128 %".238" to i64
  %".240" = lshr i128 %".238", 64
  %".241" = trunc i128 %".240" to i64
  %".242" = call i64 @"vtpu_ppt_translate"(ptr %"ctx", i64 %".239", i64 %".241")
  %".243" = icmp ne i64 %".242", 0
  br i1 %".243", label %"fault", label %"ok_4_1", !prof !1
trdone_4_1:
  %".280" = load ptr, ptr %"tptr0"
  %".281" = load i64, i64* %"tsize0"
  %".282" = icmp slt i64 113, 0
  %".283" = sub i64 %".281", 64
  %".284" = icmp sgt i64 113, %".283"
  %".285" = or i1 %".282", %".284"
  br i1 %".285", label %"fault", label %"ok_4_1.1", !prof !1
trfast_4_1:
  br label %"trdone_4_1"
ok_4_1:
  %".245" = getelementptr inbounds i8, ptr %"ctx", i64 376
  %".246" = load ptr, ptr %".245", align 1
  store ptr %".246", ptr %"tptr0"
  %".248" = getelementptr inbounds i8, ptr %"ctx", i64 384
  %".249" = load i64, ptr %".248", align 1
  store i64 %".249", i64* %"tsize0"
  %".251" = getelementptr inbounds i8, ptr %"ctx", i64 432
  %".252" = load i64, ptr %".251", align 1
  store i64 %".252", i64* %"tset0"
  %".254" = load i64, i64* %"tset1"
  %".255" = icmp ne i64 %".254", %".252"
  %".256" = load i128, i128* %"p1"
  %".257" = icmp eq i128 %".256", %".238"
  %".258" = or i1 %".255", %".257"
  %".259" = load i1, i1* %"mru1"
  %".260" = and i1 %".259", %".258"
  store i1 %".260", i1* %"mru1"
  %".262" = load i64, i64* %"tset2"
  %".263" = icmp ne i64 %".262", %".252"
  %".264" = load i128, i128* %"p2"
  %".265" = icmp eq i128 %".264", %".238"
  %".266" = or i1 %".263", %".265"
  %".267" = load i1, i1* %"mru2"
  %".268" = and i1 %".267", %".266"
  store i1 %".268", i1* %"mru2"
  %".270" = load i64, i64* %"tset6"
  %".271" = icmp ne i64 %".270", %".252"
  %".272" = load i128, i128* %"p6"
  %".273" = icmp eq i128 %".272", %".238"
  %".274" = or i1 %".271", %".273"
  %".275" = load i1, i1* %"mru6"
  %".276" = and i1 %".275", %".274"
  store i1 %".276", i1* %"mru6"
  store i1 1, i1* %"mru0"
  br label %"trdone_4_1"
fault:
  %"fault_code" = phi  i64 [262401, %"trslow_4_1"], [262401, %"trdone_4_1"], [327937, %"ok_4_1.1"], [393473, %"ok_5_1"], [459009, %"ok_6_1"], [524545, %"ok_7_1"], [590081, %"ok_8_1"], [655617, %"ok_9_1"], [721153, %"ok_10_1"], [1572869, %"siw24"], [1769477, %"siw27"], [2425089, %"trslow_37_1"], [2425089, %"trdone_37_1"], [2490625, %"trslow_38_1"], [2490625, %"trdone_38_1"], [2883841, %"ok_38_1.1"], [1572869, %"fsiw24"], [1769477, %"fsiw27"], [2425089, %"go27.1"], [2490625, %"ok_37_1.2"], [2883841, %"ok_38_1.2"]
  %".1558" = getelementptr inbounds i8, ptr %"ctx", i64 344
  %".1559" = load ptr, ptr %".1558", align 1
  %".1560" = and i64 %"fault_code", 255
  %".1561" = getelementptr inbounds i8, ptr %"ctx", i64 280
  store i64 %".1560", ptr %".1561", align 1
  %".1563" = lshr i64 %"fault_code", 16
  %".1564" = getelementptr inbounds i8, ptr %"ctx", i64 288
  store i64 %".1563", ptr %".1564", align 1
  %".1566" = lshr i64 %"fault_code", 8
  %".1567" = and i64 %".1566", 255
  %".1568" = getelementptr inbounds i8, ptr %"ctx", i64 296
  store i64 %".1567", ptr %".1568", align 1
  %".1570" = icmp ne i64 %".1560", 5
  %".1571" = zext i1 %".1570" to i64
  %".1572" = getelementptr inbounds i8, ptr %"ctx", i64 304
  store i64 %".1571", ptr %".1572", align 1
  %".1574" = load i64, i64* %"cnt0"
  %".1575" = getelementptr i64, ptr %".1559", i64 0
  store i64 %".1574", ptr %".1575", align 8
  %".1577" = load i64, i64* %"cnt1"
  %".1578" = getelementptr i64, ptr %".1559", i64 1
  store i64 %".1577", ptr %".1578", align 8
  %".1580" = load i64, i64* %"cnt2"
  %".1581" = getelementptr i64, ptr %".1559", i64 2
  store i64 %".1580", ptr %".1581", align 8
  %".1583" = load i64, i64* %"cnt3"
  %".1584" = getelementptr i64, ptr %".1559", i64 3
  store i64 %".1583", ptr %".1584", align 8
  %".1586" = call i64 @"llvm.readcyclecounter"()
  %".1587" = getelementptr inbounds i8, ptr %"ctx", i64 400
  store i64 %".1586", ptr %".1587", align 1
  ret i64 %".1560"
ok_4_1.1:
  %".287" = getelementptr i8, ptr %".280", i64 113
  %".288" = load <64 x i8>, ptr %".287", align 1
  store <64 x i8> %".288", <64 x i8>* %"v0"
  %".290" = load i64, i64* %"fasthits"
  %".291" = add i64 %".290", 1
  store i64 %".291", i64* %"fasthits"
  %".293" = load ptr, ptr %"tptr0"
  %".294" = load i64, i64* %"tsize0"
  %".295" = icmp slt i64 73, 0
  %".296" = sub i64 %".294", 64
  %".297" = icmp sgt i64 73, %".296"
  %".298" = or i1 %".295", %".297"
  br i1 %".298", label %"fault", label %"ok_5_1", !prof !1
ok_5_1:
  %".300" = getelementptr i8, ptr %".293", i64 73
  %".301" = load <64 x i8>, ptr %".300", align 1
  store <64 x i8> %".301", <64 x i8>* %"v1"
  %".303" = load i64, i64* %"fasthits"
  %".304" = add i64 %".303", 1
  store i64 %".304", i64* %"fasthits"
  %".306" = load ptr, ptr %"tptr0"
  %".307" = load i64, i64* %"tsize0"
  %".308" = icmp slt i64 187, 0
  %".309" = sub i64 %".307", 64
  %".310" = icmp sgt i64 187, %".309"
  %".311" = or i1 %".308", %".310"
  br i1 %".311", label %"fault", label %"ok_6_1", !prof !1
ok_6_1:
  %".313" = getelementptr i8, ptr %".306", i64 187
  %".314" = load <64 x i8>, ptr %".313", align 1
  store <64 x i8> %".314", <64 x i8>* %"v2"
  %".316" = load i64, i64* %"fasthits"
  %".317" = add i64 %".316", 1
  store i64 %".317", i64* %"fasthits"
  %".319" = load ptr, ptr %"tptr0"
  %".320" = load i64, i64* %"tsize0"
  %".321" = icmp slt i64 144, 0
  %".322" = sub i64 %".320", 64
  %".323" = icmp sgt i64 144, %".322"
  %".324" = or i1 %".321", %".323"
  br i1 %".324", label %"fault", label %"ok_7_1", !prof !1
ok_7_1:
  %".326" = getelementptr i8, ptr %".319", i64 144
  %".327" = load <64 x i8>, ptr %".326", align 1
  store <64 x i8> %".327", <64 x i8>* %"v3"
  %".329" = load i64, i64* %"fasthits"
  %".330" = add i64 %".329", 1
  store i64 %".330", i64* %"fasthits"
  %".332" = load ptr, ptr %"tptr0"
  %".333" = load i64, i64* %"tsize0"
  %".334" = icmp slt i64 161, 0
  %".335" = sub i64 %".333", 64
  %".336" = icmp sgt i64 161, %".335"
  %".337" = or i1 %".334", %".336"
  br i1 %".337", label %"fault", label %"ok_8_1", !prof !1
ok_8_1:
  %".339" = getelementptr i8, ptr %".332", i64 161
  %".340" = load <64 x i8>, ptr %".339", align 1
  store <64 x i8> %".340", <64 x i8>* %"v4"
  %".342" = load i64, i64* %"fasthits"
  %".343" = add i64 %".342", 1
  store i64 %".343", i64* %"fasthits"
  %".345" = load ptr, ptr %"tptr0"
  %".346" = load i64, i64* %"tsize0"
  %".347" = icmp slt i64 157, 0
  %".348" = sub i64 %".346", 64
  %".349" = icmp sgt i64 157, %".348"
  %".350" = or i1 %".347", %".349"
  br i1 %".350", label %"fault", label %"ok_9_1", !prof !1
ok_9_1:
  %".352" = getelementptr i8, ptr %".345", i64 157
  %".353" = load <64 x i8>, ptr %".352", align 1
  store <64 x i8> %".353", <64 x i8>* %"v5"
  %".355" = load i64, i64* %"fasthits"
  %".356" = add i64 %".355", 1
  store i64 %".356", i64* %"fasthits"
  %".358" = load ptr, ptr %"tptr0"
  %".359" = load i64, i64* %"tsize0"
  %".360" = icmp slt i64 0, 0
  %".361" = sub i64 %".359", 64
  %".362" = icmp sgt i64 0, %".361"
  %".363" = or i1 %".360", %".362"
  br i1 %".363", label %"fault", label %"ok_10_1", !prof !1
ok_10_1:
  %".365" = getelementptr i8, ptr %".358", i64 0
  %".366" = load <64 x i8>, ptr %".365", align 1
  store <64 x i8> %".366", <64 x i8>* %"v6"
  %".368" = load i64, i64* %"fasthits"
  %".369" = add i64 %".368", 1
  store i64 %".369", i64* %"fasthits"
  %".371" = load ptr, ptr %"tptr0"
  %".372" = load i64, i64* %"tsize0"
  %".373" = icmp slt i64 55, 0
  %".374" = sub i64 %".372", 64
  %".375" = icmp sgt i64 55, %".374"
  %".376" = or i1 %".373", %".375"
  br i1 %".376", label %"fault", label %"ok_11_1", !prof !1
ok_11_1:
  %".378" = getelementptr i8, ptr %".371", i64 55
  %".379" = load <64 x i8>, ptr %".378", align 1
  store <64 x i8> %".379", <64 x i8>* %"v7"
  store i64 1, i64* %"r0"
  store i64 170, i64* %"r1"
  store i64 -1, i64* %"r2"
  store i64 1, i64* %"r3"
  store i64 -4317753572, i64* %"r4"
  store i64 18231, i64* %"r5"
  store i64 0, i64* %"r6"
  store i64 10086, i64* %"r7"
  store i64 5, i64* %"r8"
  store i64 -3, i64* %"r9"
  %".391" = bitcast <16 x i32> <i32 33, i32 33, i32 33, i32 33, i32 33, i32 33, i32 33, i32 33, i32 33, i32 33, i32 33, i32 33, i32 33, i32 33, i32 33, i32 33> to <64 x i8>
  store <64 x i8> %".391", <64 x i8>* %"v10"
  store i64 2, i64* %"r15"
  br label %"dispatch24"
go24:
  %".398" = load i64, i64* %"cnt1"
  %".399" = add i64 %".398", 1
  store i64 %".399", i64* %"cnt1"
  %".401" = load i64, i64* %"r7"
  %".402" = icmp eq i64 %".401", 0
  %".403" = zext i1 %".402" to i64
  store i64 %".403", i64* %"r14"
  %".405" = load i64, i64* %"flags"
  %".406" = and i64 %".405", -2
  %".407" = or i64 %".406", %".403"
  store i64 %".407", i64* %"flags"
  %".409" = load i64, i64* %"flags"
  %".410" = and i64 %".409", 1
  %".411" = icmp ne i64 %".410", 0
  br i1 %".411", label %"siw27", label %"siw26"
go27:
  %".423" = load i64, i64* %"cnt3"
  %".424" = add i64 %".423", 1
  store i64 %".424", i64* %"cnt3"
  %".426" = load <64 x i8>, <64 x i8>* %"v3"
  store <64 x i8> %".426", <64 x i8>* %"m3"
  store i64 64, i64* %"ml3"
  %".429" = load <64 x i8>, <64 x i8>* %"m3"
  store <64 x i8> %".429", <64 x i8>* %"v1"
  %".431" = load <64 x i8>, <64 x i8>* %"v4"
  %".432" = bitcast <64 x i8> %".431" to <16 x float>
  %".433" = load <64 x i8>, <64 x i8>* %"v16"
  %".434" = bitcast <64 x i8> %".433" to <32 x i16>
  %".435" = zext <32 x i16> %".434" to <32 x i32>
  %".436" = shl <32 x i32> %".435", <i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16>
  %".437" = bitcast <32 x i32> %".436" to <32 x float>
  %".438" = load <64 x i8>, <64 x i8>* %"v7"
  %".439" = bitcast <64 x i8> %".438" to <32 x i16>
  %".440" = zext <32 x i16> %".439" to <32 x i32>
  %".441" = shl <32 x i32> %".440", <i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16>
  %".442" = bitcast <32 x i32> %".441" to <32 x float>
  %".443" = shufflevector <32 x float> %".437", <32 x float> %".437", <16 x i32> <i32 0, i32 2, i32 4, i32 6, i32 8, i32 10, i32 12, i32 14, i32 16, i32 18, i32 20, i32 22, i32 24, i32 26, i32 28, i32 30>
  %".444" = shufflevector <32 x float> %".442", <32 x float> %".442", <16 x i32> <i32 0, i32 2, i32 4, i32 6, i32 8, i32 10, i32 12, i32 14, i32 16, i32 18, i32 20, i32 22, i32 24, i32 26, i32 28, i32 30>
  %".445" = fmul <16 x float> %".443", %".444"
  %".446" = shufflevector <32 x float> %".437", <32 x float> %".437", <16 x i32> <i32 1, i32 3, i32 5, i32 7, i32 9, i32 11, i32 13, i32 15, i32 17, i32 19, i32 21, i32 23, i32 25, i32 27, i32 29, i32 31>
  %".447" = shufflevector <32 x float> %".442", <32 x float> %".442", <16 x i32> <i32 1, i32 3, i32 5, i32 7, i32 9, i32 11, i32 13, i32 15, i32 17, i32 19, i32 21, i32 23, i32 25, i32 27, i32 29, i32 31>
  %".448" = fmul <16 x float> %".446", %".447"
  %".449" = fadd <16 x float> %".432", %".445"
  %".450" = fadd <16 x float> %".449", %".448"
  %".451" = bitcast <16 x float> %".450" to <16 x i32>
  %".452" = call <16 x i1> @"llvm.x86.avx512.mask.cmp.ps.512"(<16 x float> %".450", <16 x float> %".450", i32 3, <16 x i1> <i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1>, i32 4)
  %".453" = select  <16 x i1> %".452", <16 x i32> <i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344>, <16 x i32> %".451"
  %".454" = bitcast <16 x i32> %".453" to <16 x float>
  %".455" = bitcast <16 x float> %".454" to <64 x i8>
  store <64 x i8> %".455", <64 x i8>* %"v4"
  %".457" = load <64 x i8>, <64 x i8>* %"v12"
  %".458" = bitcast <64 x i8> %".457" to <16 x float>
  %".459" = call <16 x float> @"llvm.sqrt.v16f32"(<16 x float> %".458")
  %".460" = bitcast <16 x float> %".459" to <64 x i8>
  store <64 x i8> %".460", <64 x i8>* %"v18"
  %".462" = load <64 x i8>, <64 x i8>* %"v7"
  %".463" = bitcast <64 x i8> %".462" to <32 x i16>
  %".464" = or <32 x i16> %".463", <i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009>
  %".465" = bitcast <32 x i16> %".464" to <64 x i8>
  store <64 x i8> %".465", <64 x i8>* %"v10"
  %".467" = load i128, i128* %"p0"
  %".468" = lshr i128 %".467", 10
  %".469" = and i128 %".468", 1023
  %".470" = trunc i128 %".469" to i64
  %".471" = add i64 %".470", 1
  store i64 %".471", i64* %"r2"
  %".473" = load <64 x i8>, <64 x i8>* %"v31"
  %".474" = bitcast <64 x i8> %".473" to <8 x i64>
  %".475" = load <64 x i8>, <64 x i8>* %"v12"
  %".476" = bitcast <64 x i8> %".475" to <8 x i64>
  %".477" = load <64 x i8>, <64 x i8>* %"v0"
  %".478" = bitcast <64 x i8> %".477" to <8 x i64>
  %".479" = mul <8 x i64> %".474", %".476"
  %".480" = add <8 x i64> %".479", %".478"
  %".481" = bitcast <8 x i64> %".480" to <64 x i8>
  store <64 x i8> %".481", <64 x i8>* %"v4"
  %".483" = load <64 x i8>, <64 x i8>* %"v19"
  %".484" = bitcast <64 x i8> %".483" to <32 x i16>
  %".485" = load <64 x i8>, <64 x i8>* %"v19"
  %".486" = bitcast <64 x i8> %".485" to <32 x i16>
  %".487" = and <32 x i16> %".486", <i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31>
  %".488" = extractelement <32 x i16> %".487", i32 0
  %".489" = extractelement <32 x i16> %".484", i16 %".488"
  %".490" = insertelement <32 x i16> <i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0>, i16 %".489", i32 0
  %".491" = extractelement <32 x i16> %".487", i32 1
  %".492" = extractelement <32 x i16> %".484", i16 %".491"
  %".493" = insertelement <32 x i16> %".490", i16 %".492", i32 1
  %".494" = extractelement <32 x i16> %".487", i32 2
  %".495" = extractelement <32 x i16> %".484", i16 %".494"
  %".496" = insertelement <32 x i16> %".493", i16 %".495", i32 2
  %".497" = extractelement <32 x i16> %".487", i32 3
  %".498" = extractelement <32 x i16> %".484", i16 %".497"
  %".499" = insertelement <32 x i16> %".496", i16 %".498", i32 3
  %".500" = extractelement <32 x i16> %".487", i32 4
  %".501" = extractelement <32 x i16> %".484", i16 %".500"
  %".502" = insertelement <32 x i16> %".499", i16 %".501", i32 4
  %".503" = extractelement <32 x i16> %".487", i32 5
  %".504" = extractelement <32 x i16> %".484", i16 %".503"
  %".505" = insertelement <32 x i16> %".502", i16 %".504", i32 5
  %".506" = extractelement <32 x i16> %".487", i32 6
  %".507" = extractelement <32 x i16> %".484", i16 %".506"
  %".508" = insertelement <32 x i16> %".505", i16 %".507", i32 6
  %".509" = extractelement <32 x i16> %".487", i32 7
  %".510" = extractelement <32 x i16> %".484", i16 %".509"
  %".511" = insertelement <32 x i16> %".508", i16 %".510", i32 7
  %".512" = extractelement <32 x i16> %".487", i32 8
  %".513" = extractelement <32 x i16> %".484", i16 %".512"
  %".514" = insertelement <32 x i16> %".511", i16 %".513", i32 8
  %".515" = extractelement <32 x i16> %".487", i32 9
  %".516" = extractelement <32 x i16> %".484", i16 %".515"
  %".517" = insertelement <32 x i16> %".514", i16 %".516", i32 9
  %".518" = extractelement <32 x i16> %".487", i32 10
  %".519" = extractelement <32 x i16> %".484", i16 %".518"
  %".520" = insertelement <32 x i16> %".517", i16 %".519", i32 10
  %".521" = extractelement <32 x i16> %".487", i32 11
  %".522" = extractelement <32 x i16> %".484", i16 %".521"
  %".523" = insertelement <32 x i16> %".520", i16 %".522", i32 11
  %".524" = extractelement <32 x i16> %".487", i32 12
  %".525" = extractelement <32 x i16> %".484", i16 %".524"
  %".526" = insertelement <32 x i16> %".523", i16 %".525", i32 12
  %".527" = extractelement <32 x i16> %".487", i32 13
  %".528" = extractelement <32 x i16> %".484", i16 %".527"
  %".529" = insertelement <32 x i16> %".526", i16 %".528", i32 13
  %".530" = extractelement <32 x i16> %".487", i32 14
  %".531" = extractelement <32 x i16> %".484", i16 %".530"
  %".532" = insertelement <32 x i16> %".529", i16 %".531", i32 14
  %".533" = extractelement <32 x i16> %".487", i32 15
  %".534" = extractelement <32 x i16> %".484", i16 %".533"
  %".535" = insertelement <32 x i16> %".532", i16 %".534", i32 15
  %".536" = extractelement <32 x i16> %".487", i32 16
  %".537" = extractelement <32 x i16> %".484", i16 %".536"
  %".538" = insertelement <32 x i16> %".535", i16 %".537", i32 16
  %".539" = extractelement <32 x i16> %".487", i32 17
  %".540" = extractelement <32 x i16> %".484", i16 %".539"
  %".541" = insertelement <32 x i16> %".538", i16 %".540", i32 17
  %".542" = extractelement <32 x i16> %".487", i32 18
  %".543" = extractelement <32 x i16> %".484", i16 %".542"
  %".544" = insertelement <32 x i16> %".541", i16 %".543", i32 18
  %".545" = extractelement <32 x i16> %".487", i32 19
  %".546" = extractelement <32 x i16> %".484", i16 %".545"
  %".547" = insertelement <32 x i16> %".544", i16 %".546", i32 19
  %".548" = extractelement <32 x i16> %".487", i32 20
  %".549" = extractelement <32 x i16> %".484", i16 %".548"
  %".550" = insertelement <32 x i16> %".547", i16 %".549", i32 20
  %".551" = extractelement <32 x i16> %".487", i32 21
  %".552" = extractelement <32 x i16> %".484", i16 %".551"
  %".553" = insertelement <32 x i16> %".550", i16 %".552", i32 21
  %".554" = extractelement <32 x i16> %".487", i32 22
  %".555" = extractelement <32 x i16> %".484", i16 %".554"
  %".556" = insertelement <32 x i16> %".553", i16 %".555", i32 22
  %".557" = extractelement <32 x i16> %".487", i32 23
  %".558" = extractelement <32 x i16> %".484", i16 %".557"
  %".559" = insertelement <32 x i16> %".556", i16 %".558", i32 23
  %".560" = extractelement <32 x i16> %".487", i32 24
  %".561" = extractelement <32 x i16> %".484", i16 %".560"
  %".562" = insertelement <32 x i16> %".559", i16 %".561", i32 24
  %".563" = extractelement <32 x i16> %".487", i32 25
  %".564" = extractelement <32 x i16> %".484", i16 %".563"
  %".565" = insertelement <32 x i16> %".562", i16 %".564", i32 25
  %".566" = extractelement <32 x i16> %".487", i32 26
  %".567" = extractelement <32 x i16> %".484", i16 %".566"
  %".568" = insertelement <32 x i16> %".565", i16 %".567", i32 26
  %".569" = extractelement <32 x i16> %".487", i32 27
  %".570" = extractelement <32 x i16> %".484", i16 %".569"
  %".571" = insertelement <32 x i16> %".568", i16 %".570", i32 27
  %".572" = extractelement <32 x i16> %".487", i32 28
  %".573" = extractelement <32 x i16> %".484", i16 %".572"
  %".574" = insertelement <32 x i16> %".571", i16 %".573", i32 28
  %".575" = extractelement <32 x i16> %".487", i32 29
  %".576" = extractelement <32 x i16> %".484", i16 %".575"
  %".577" = insertelement <32 x i16> %".574", i16 %".576", i32 29
  %".578" = extractelement <32 x i16> %".487", i32 30
  %".579" = extractelement <32 x i16> %".484", i16 %".578"
  %".580" = insertelement <32 x i16> %".577", i16 %".579", i32 30
  %".581" = extractelement <32 x i16> %".487", i32 31
  %".582" = extractelement <32 x i16> %".484", i16 %".581"
  %".583" = insertelement <32 x i16> %".580", i16 %".582", i32 31
  %".584" = bitcast <32 x i16> %".583" to <64 x i8>
  store <64 x i8> %".584", <64 x i8>* %"v5"
  %".586" = load <64 x i8>, <64 x i8>* %"v7"
  store <64 x i8> %".586", <64 x i8>* %"m3"
  store i64 64, i64* %"ml3"
  %".589" = load <64 x i8>, <64 x i8>* %"m3"
  %".590" = bitcast <64 x i8> %".589" to <8 x i64>
  %".591" = extractelement <8 x i64> %".590", i32 0
  store i64 %".591", i64* %"r2"
  %".593" = load <64 x i8>, <64 x i8>* %"v10"
  %".594" = bitcast <64 x i8> %".593" to <16 x i32>
  %".595" = load <64 x i8>, <64 x i8>* %"v26"
  %".596" = bitcast <64 x i8> %".595" to <16 x i32>
  %".597" = xor <16 x i32> %".594", %".596"
  %".598" = bitcast <16 x i32> %".597" to <64 x i8>
  store <64 x i8> %".598", <64 x i8>* %"v26"
  %".600" = load <64 x i8>, <64 x i8>* %"v10"
  %".601" = bitcast <64 x i8> %".600" to <16 x i32>
  %".602" = shufflevector <16 x i32> %".601", <16 x i32> %".601", <16 x i32> <i32 0, i32 1, i32 2, i32 3, i32 4, i32 5, i32 6, i32 7, i32 8, i32 9, i32 10, i32 11, i32 12, i32 13, i32 14, i32 15>
  %".603" = sext <16 x i32> %".602" to <16 x i64>
  %".604" = mul <16 x i64> %".603", <i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4>
  %".605" = icmp sgt i64 46, 4611686018427387904
  %".606" = icmp slt i64 46, -4611686018427387904
  %".607" = or i1 %".605", %".606"
  %".608" = or i1 0, %".607"
  %".609" = load i1, i1* %"mru2"
  %".610" = load i64, i64* %"fasthits"
  %".611" = add i64 %".610", 1
  store i64 %".611", i64* %"fasthits"
  br i1 %".609", label %"trfast_37_1", label %"trslow_37_1", !prof !0
trslow_37_1:
  %".615" = load i64, i64* %"trslow"
  %".616" = add i64 %".615", 1
  store i64 %".616", i64* %"trslow"
  %".618" = load i128, i128* %"p2"
  %".619" = trunc i128 %".618" to i64
  %".620" = lshr i128 %".618", 64
  %".621" = trunc i128 %".620" to i64
  %".622" = call i64 @"vtpu_ppt_translate"(ptr %"ctx", i64 %".619", i64 %".621")
  %".623" = icmp ne i64 %".622", 0
  br i1 %".623", label %"fault", label %"ok_37_1", !prof !1
trdone_37_1:
  %".660" = load ptr, ptr %"tptr2"
  %".661" = load i64, i64* %"tsize2"
  %".662" = insertelement <16 x i64> <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>, i64 46, i32 0
  %".663" = shufflevector <16 x i64> %".662", <16 x i64> %".662", <16 x i32> <i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0>
  %".664" = add <16 x i64> %".663", %".604"
  %".665" = sub i64 %".661", 4
  %".666" = insertelement <16 x i64> <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>, i64 %".665", i32 0
  %".667" = shufflevector <16 x i64> %".666", <16 x i64> %".666", <16 x i32> <i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0>
  %".668" = icmp slt <16 x i64> %".664", <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>
  %".669" = icmp sgt <16 x i64> %".664", %".667"
  %".670" = or <16 x i1> %".668", %".669"
  %".671" = call i1 @"llvm.vector.reduce.or.v16i1"(<16 x i1> %".670")
  %".672" = or i1 %".608", %".671"
  br i1 %".672", label %"fault", label %"ok_37_1.1", !prof !1
trfast_37_1:
  br label %"trdone_37_1"
ok_37_1:
  %".625" = getelementptr inbounds i8, ptr %"ctx", i64 376
  %".626" = load ptr, ptr %".625", align 1
  store ptr %".626", ptr %"tptr2"
  %".628" = getelementptr inbounds i8, ptr %"ctx", i64 384
  %".629" = load i64, ptr %".628", align 1
  store i64 %".629", i64* %"tsize2"
  %".631" = getelementptr inbounds i8, ptr %"ctx", i64 432
  %".632" = load i64, ptr %".631", align 1
  store i64 %".632", i64* %"tset2"
  %".634" = load i64, i64* %"tset0"
  %".635" = icmp ne i64 %".634", %".632"
  %".636" = load i128, i128* %"p0"
  %".637" = icmp eq i128 %".636", %".618"
  %".638" = or i1 %".635", %".637"
  %".639" = load i1, i1* %"mru0"
  %".640" = and i1 %".639", %".638"
  store i1 %".640", i1* %"mru0"
  %".642" = load i64, i64* %"tset1"
  %".643" = icmp ne i64 %".642", %".632"
  %".644" = load i128, i128* %"p1"
  %".645" = icmp eq i128 %".644", %".618"
  %".646" = or i1 %".643", %".645"
  %".647" = load i1, i1* %"mru1"
  %".648" = and i1 %".647", %".646"
  store i1 %".648", i1* %"mru1"
  %".650" = load i64, i64* %"tset6"
  %".651" = icmp ne i64 %".650", %".632"
  %".652" = load i128, i128* %"p6"
  %".653" = icmp eq i128 %".652", %".618"
  %".654" = or i1 %".651", %".653"
  %".655" = load i1, i1* %"mru6"
  %".656" = and i1 %".655", %".654"
  store i1 %".656", i1* %"mru6"
  store i1 1, i1* %"mru2"
  br label %"trdone_37_1"
ok_37_1.1:
  %".674" = load <64 x i8>, <64 x i8>* %"v0"
  %".675" = bitcast <64 x i8> %".674" to <16 x i32>
  %".676" = extractelement <16 x i64> %".664", i32 0
  %".677" = extractelement <16 x i32> %".675", i32 0
  %".678" = getelementptr i8, ptr %".660", i64 %".676"
  store i32 %".677", ptr %".678", align 1
  %".680" = extractelement <16 x i64> %".664", i32 1
  %".681" = extractelement <16 x i32> %".675", i32 1
  %".682" = getelementptr i8, ptr %".660", i64 %".680"
  store i32 %".681", ptr %".682", align 1
  %".684" = extractelement <16 x i64> %".664", i32 2
  %".685" = extractelement <16 x i32> %".675", i32 2
  %".686" = getelementptr i8, ptr %".660", i64 %".684"
  store i32 %".685", ptr %".686", align 1
  %".688" = extractelement <16 x i64> %".664", i32 3
  %".689" = extractelement <16 x i32> %".675", i32 3
  %".690" = getelementptr i8, ptr %".660", i64 %".688"
  store i32 %".689", ptr %".690", align 1
  %".692" = extractelement <16 x i64> %".664", i32 4
  %".693" = extractelement <16 x i32> %".675", i32 4
  %".694" = getelementptr i8, ptr %".660", i64 %".692"
  store i32 %".693", ptr %".694", align 1
  %".696" = extractelement <16 x i64> %".664", i32 5
  %".697" = extractelement <16 x i32> %".675", i32 5
  %".698" = getelementptr i8, ptr %".660", i64 %".696"
  store i32 %".697", ptr %".698", align 1
  %".700" = extractelement <16 x i64> %".664", i32 6
  %".701" = extractelement <16 x i32> %".675", i32 6
  %".702" = getelementptr i8, ptr %".660", i64 %".700"
  store i32 %".701", ptr %".702", align 1
  %".704" = extractelement <16 x i64> %".664", i32 7
  %".705" = extractelement <16 x i32> %".675", i32 7
  %".706" = getelementptr i8, ptr %".660", i64 %".704"
  store i32 %".705", ptr %".706", align 1
  %".708" = extractelement <16 x i64> %".664", i32 8
  %".709" = extractelement <16 x i32> %".675", i32 8
  %".710" = getelementptr i8, ptr %".660", i64 %".708"
  store i32 %".709", ptr %".710", align 1
  %".712" = extractelement <16 x i64> %".664", i32 9
  %".713" = extractelement <16 x i32> %".675", i32 9
  %".714" = getelementptr i8, ptr %".660", i64 %".712"
  store i32 %".713", ptr %".714", align 1
  %".716" = extractelement <16 x i64> %".664", i32 10
  %".717" = extractelement <16 x i32> %".675", i32 10
  %".718" = getelementptr i8, ptr %".660", i64 %".716"
  store i32 %".717", ptr %".718", align 1
  %".720" = extractelement <16 x i64> %".664", i32 11
  %".721" = extractelement <16 x i32> %".675", i32 11
  %".722" = getelementptr i8, ptr %".660", i64 %".720"
  store i32 %".721", ptr %".722", align 1
  %".724" = extractelement <16 x i64> %".664", i32 12
  %".725" = extractelement <16 x i32> %".675", i32 12
  %".726" = getelementptr i8, ptr %".660", i64 %".724"
  store i32 %".725", ptr %".726", align 1
  %".728" = extractelement <16 x i64> %".664", i32 13
  %".729" = extractelement <16 x i32> %".675", i32 13
  %".730" = getelementptr i8, ptr %".660", i64 %".728"
  store i32 %".729", ptr %".730", align 1
  %".732" = extractelement <16 x i64> %".664", i32 14
  %".733" = extractelement <16 x i32> %".675", i32 14
  %".734" = getelementptr i8, ptr %".660", i64 %".732"
  store i32 %".733", ptr %".734", align 1
  %".736" = extractelement <16 x i64> %".664", i32 15
  %".737" = extractelement <16 x i32> %".675", i32 15
  %".738" = getelementptr i8, ptr %".660", i64 %".736"
  store i32 %".737", ptr %".738", align 1
  %".740" = load <64 x i8>, <64 x i8>* %"v2"
  %".741" = bitcast <64 x i8> %".740" to <16 x float>
  %".742" = load <64 x i8>, <64 x i8>* %"v20"
  %".743" = bitcast <64 x i8> %".742" to <32 x i16>
  %".744" = zext <32 x i16> %".743" to <32 x i32>
  %".745" = shl <32 x i32> %".744", <i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16>
  %".746" = bitcast <32 x i32> %".745" to <32 x float>
  %".747" = load <64 x i8>, <64 x i8>* %"v24"
  %".748" = bitcast <64 x i8> %".747" to <32 x i16>
  %".749" = zext <32 x i16> %".748" to <32 x i32>
  %".750" = shl <32 x i32> %".749", <i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16>
  %".751" = bitcast <32 x i32> %".750" to <32 x float>
  %".752" = shufflevector <32 x float> %".746", <32 x float> %".746", <16 x i32> <i32 0, i32 2, i32 4, i32 6, i32 8, i32 10, i32 12, i32 14, i32 16, i32 18, i32 20, i32 22, i32 24, i32 26, i32 28, i32 30>
  %".753" = shufflevector <32 x float> %".751", <32 x float> %".751", <16 x i32> <i32 0, i32 2, i32 4, i32 6, i32 8, i32 10, i32 12, i32 14, i32 16, i32 18, i32 20, i32 22, i32 24, i32 26, i32 28, i32 30>
  %".754" = fmul <16 x float> %".752", %".753"
  %".755" = shufflevector <32 x float> %".746", <32 x float> %".746", <16 x i32> <i32 1, i32 3, i32 5, i32 7, i32 9, i32 11, i32 13, i32 15, i32 17, i32 19, i32 21, i32 23, i32 25, i32 27, i32 29, i32 31>
  %".756" = shufflevector <32 x float> %".751", <32 x float> %".751", <16 x i32> <i32 1, i32 3, i32 5, i32 7, i32 9, i32 11, i32 13, i32 15, i32 17, i32 19, i32 21, i32 23, i32 25, i32 27, i32 29, i32 31>
  %".757" = fmul <16 x float> %".755", %".756"
  %".758" = fadd <16 x float> %".741", %".754"
  %".759" = fadd <16 x float> %".758", %".757"
  %".760" = bitcast <16 x float> %".759" to <16 x i32>
  %".761" = call <16 x i1> @"llvm.x86.avx512.mask.cmp.ps.512"(<16 x float> %".759", <16 x float> %".759", i32 3, <16 x i1> <i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1>, i32 4)
  %".762" = select  <16 x i1> %".761", <16 x i32> <i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344>, <16 x i32> %".760"
  %".763" = bitcast <16 x i32> %".762" to <16 x float>
  %".764" = bitcast <16 x float> %".763" to <64 x i8>
  store <64 x i8> %".764", <64 x i8>* %"v2"
  %".766" = load i1, i1* %"mru1"
  %".767" = load i64, i64* %"fasthits"
  %".768" = add i64 %".767", 1
  store i64 %".768", i64* %"fasthits"
  br i1 %".766", label %"trfast_38_1", label %"trslow_38_1", !prof !0
trslow_38_1:
  %".772" = load i64, i64* %"trslow"
  %".773" = add i64 %".772", 1
  store i64 %".773", i64* %"trslow"
  %".775" = load i128, i128* %"p1"
  %".776" = trunc i128 %".775" to i64
  %".777" = lshr i128 %".775", 64
  %".778" = trunc i128 %".777" to i64
  %".779" = call i64 @"vtpu_ppt_translate"(ptr %"ctx", i64 %".776", i64 %".778")
  %".780" = icmp ne i64 %".779", 0
  br i1 %".780", label %"fault", label %"ok_38_1", !prof !1
trdone_38_1:
  %".817" = load ptr, ptr %"tptr1"
  %".818" = load i64, i64* %"tsize1"
  %".819" = icmp slt i64 192, 0
  %".820" = sub i64 %".818", 1
  %".821" = icmp sgt i64 192, %".820"
  %".822" = or i1 %".819", %".821"
  br i1 %".822", label %"fault", label %"ok_38_1.1", !prof !1
trfast_38_1:
  br label %"trdone_38_1"
ok_38_1:
  %".782" = getelementptr inbounds i8, ptr %"ctx", i64 376
  %".783" = load ptr, ptr %".782", align 1
  store ptr %".783", ptr %"tptr1"
  %".785" = getelementptr inbounds i8, ptr %"ctx", i64 384
  %".786" = load i64, ptr %".785", align 1
  store i64 %".786", i64* %"tsize1"
  %".788" = getelementptr inbounds i8, ptr %"ctx", i64 432
  %".789" = load i64, ptr %".788", align 1
  store i64 %".789", i64* %"tset1"
  %".791" = load i64, i64* %"tset0"
  %".792" = icmp ne i64 %".791", %".789"
  %".793" = load i128, i128* %"p0"
  %".794" = icmp eq i128 %".793", %".775"
  %".795" = or i1 %".792", %".794"
  %".796" = load i1, i1* %"mru0"
  %".797" = and i1 %".796", %".795"
  store i1 %".797", i1* %"mru0"
  %".799" = load i64, i64* %"tset2"
  %".800" = icmp ne i64 %".799", %".789"
  %".801" = load i128, i128* %"p2"
  %".802" = icmp eq i128 %".801", %".775"
  %".803" = or i1 %".800", %".802"
  %".804" = load i1, i1* %"mru2"
  %".805" = and i1 %".804", %".803"
  store i1 %".805", i1* %"mru2"
  %".807" = load i64, i64* %"tset6"
  %".808" = icmp ne i64 %".807", %".789"
  %".809" = load i128, i128* %"p6"
  %".810" = icmp eq i128 %".809", %".775"
  %".811" = or i1 %".808", %".810"
  %".812" = load i1, i1* %"mru6"
  %".813" = and i1 %".812", %".811"
  store i1 %".813", i1* %"mru6"
  store i1 1, i1* %"mru1"
  br label %"trdone_38_1"
ok_38_1.1:
  %".824" = getelementptr i8, ptr %".817", i64 192
  %".825" = load i8, ptr %".824", align 1
  %".826" = sext i8 %".825" to i64
  store i64 %".826", i64* %"r4"
  %".828" = load <64 x i8>, <64 x i8>* %"v16"
  %".829" = bitcast <64 x i8> %".828" to <8 x i64>
  %".830" = icmp slt <8 x i64> %".829", <i64 78, i64 78, i64 78, i64 78, i64 78, i64 78, i64 78, i64 78>
  %".831" = select  <8 x i1> %".830", <8 x i64> %".829", <8 x i64> <i64 78, i64 78, i64 78, i64 78, i64 78, i64 78, i64 78, i64 78>
  %".832" = bitcast <8 x i64> %".831" to <64 x i8>
  store <64 x i8> %".832", <64 x i8>* %"v8"
  %".834" = load <64 x i8>, <64 x i8>* %"v0"
  %".835" = load <64 x i8>, <64 x i8>* %"v11"
  %".836" = add <64 x i8> %".834", %".835"
  store <64 x i8> %".836", <64 x i8>* %"v2"
  %".838" = load <64 x i8>, <64 x i8>* %"v5"
  %".839" = bitcast <64 x i8> %".838" to <16 x float>
  %".840" = load <64 x i8>, <64 x i8>* %"v20"
  %".841" = bitcast <64 x i8> %".840" to <16 x float>
  %".842" = fmul <16 x float> %".839", %".841"
  %".843" = bitcast <16 x float> %".842" to <64 x i8>
  store <64 x i8> %".843", <64 x i8>* %"v25"
  %".845" = load i64, i64* %"r3"
  %".846" = insertelement <8 x i64> <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>, i64 %".845", i32 0
  %".847" = bitcast <8 x i64> %".846" to <64 x i8>
  %".848" = and <64 x i8> %".847", <i8 255, i8 255, i8 255, i8 255, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0>
  store <64 x i8> %".848", <64 x i8>* %"m0"
  store i64 4, i64* %"ml0"
  %".851" = load <64 x i8>, <64 x i8>* %"m0"
  store <64 x i8> %".851", <64 x i8>* %"v0"
  %".853" = load <64 x i8>, <64 x i8>* %"v10"
  %".854" = bitcast <64 x i8> %".853" to <16 x i32>
  %".855" = shufflevector <16 x i32> %".854", <16 x i32> %".854", <8 x i32> <i32 0, i32 1, i32 2, i32 3, i32 4, i32 5, i32 6, i32 7>
  %".856" = sext <8 x i32> %".855" to <8 x i64>
  %".857" = mul <8 x i64> %".856", <i64 8, i64 8, i64 8, i64 8, i64 8, i64 8, i64 8, i64 8>
  %".858" = icmp sgt i64 24, 4611686018427387904
  %".859" = icmp slt i64 24, -4611686018427387904
  %".860" = or i1 %".858", %".859"
  %".861" = or i1 0, %".860"
  %".862" = load i64, i64* %"fasthits"
  %".863" = add i64 %".862", 1
  store i64 %".863", i64* %"fasthits"
  %".865" = load ptr, ptr %"tptr1"
  %".866" = load i64, i64* %"tsize1"
  %".867" = insertelement <8 x i64> <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>, i64 24, i32 0
  %".868" = shufflevector <8 x i64> %".867", <8 x i64> %".867", <8 x i32> <i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0>
  %".869" = add <8 x i64> %".868", %".857"
  %".870" = sub i64 %".866", 8
  %".871" = insertelement <8 x i64> <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>, i64 %".870", i32 0
  %".872" = shufflevector <8 x i64> %".871", <8 x i64> %".871", <8 x i32> <i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0>
  %".873" = icmp slt <8 x i64> %".869", <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>
  %".874" = icmp sgt <8 x i64> %".869", %".872"
  %".875" = or <8 x i1> %".873", %".874"
  %".876" = call i1 @"llvm.vector.reduce.or.v8i1"(<8 x i1> %".875")
  %".877" = or i1 %".861", %".876"
  br i1 %".877", label %"fault", label %"ok_44_1", !prof !1
ok_44_1:
  %".879" = load <64 x i8>, <64 x i8>* %"v0"
  %".880" = bitcast <64 x i8> %".879" to <8 x i64>
  %".881" = extractelement <8 x i64> %".869", i32 0
  %".882" = extractelement <8 x i64> %".880", i32 0
  %".883" = getelementptr i8, ptr %".865", i64 %".881"
  store i64 %".882", ptr %".883", align 1
  %".885" = extractelement <8 x i64> %".869", i32 1
  %".886" = extractelement <8 x i64> %".880", i32 1
  %".887" = getelementptr i8, ptr %".865", i64 %".885"
  store i64 %".886", ptr %".887", align 1
  %".889" = extractelement <8 x i64> %".869", i32 2
  %".890" = extractelement <8 x i64> %".880", i32 2
  %".891" = getelementptr i8, ptr %".865", i64 %".889"
  store i64 %".890", ptr %".891", align 1
  %".893" = extractelement <8 x i64> %".869", i32 3
  %".894" = extractelement <8 x i64> %".880", i32 3
  %".895" = getelementptr i8, ptr %".865", i64 %".893"
  store i64 %".894", ptr %".895", align 1
  %".897" = extractelement <8 x i64> %".869", i32 4
  %".898" = extractelement <8 x i64> %".880", i32 4
  %".899" = getelementptr i8, ptr %".865", i64 %".897"
  store i64 %".898", ptr %".899", align 1
  %".901" = extractelement <8 x i64> %".869", i32 5
  %".902" = extractelement <8 x i64> %".880", i32 5
  %".903" = getelementptr i8, ptr %".865", i64 %".901"
  store i64 %".902", ptr %".903", align 1
  %".905" = extractelement <8 x i64> %".869", i32 6
  %".906" = extractelement <8 x i64> %".880", i32 6
  %".907" = getelementptr i8, ptr %".865", i64 %".905"
  store i64 %".906", ptr %".907", align 1
  %".909" = extractelement <8 x i64> %".869", i32 7
  %".910" = extractelement <8 x i64> %".880", i32 7
  %".911" = getelementptr i8, ptr %".865", i64 %".909"
  store i64 %".910", ptr %".911", align 1
  %".913" = load <64 x i8>, <64 x i8>* %"v29"
  %".914" = bitcast <64 x i8> %".913" to <16 x i32>
  %".915" = load <64 x i8>, <64 x i8>* %"v26"
  %".916" = load <64 x i8>, <64 x i8>* %"v2"
  %".917" = shufflevector <64 x i8> %".916", <64 x i8> %".916", <64 x i32> <i32 0, i32 1, i32 0, i32 1, i32 0, i32 1, i32 0, i32 1, i32 2, i32 3, i32 2, i32 3, i32 2, i32 3, i32 2, i32 3, i32 4, i32 5, i32 4, i32 5, i32 4, i32 5, i32 4, i32 5, i32 6, i32 7, i32 6, i32 7, i32 6, i32 7, i32 6, i32 7, i32 8, i32 9, i32 8, i32 9, i32 8, i32 9, i32 8, i32 9, i32 10, i32 11, i32 10, i32 11, i32 10, i32 11, i32 10, i32 11, i32 12, i32 13, i32 12, i32 13, i32 12, i32 13, i32 12, i32 13, i32 14, i32 15, i32 14, i32 15, i32 14, i32 15, i32 14, i32 15>
  %".918" = call <64 x i8> @"llvm.x86.avx512.pmultishift.qb.512"(<64 x i8> <i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14>, <64 x i8> %".917")
  %".919" = and <64 x i8> %".918", <i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3>
  %".920" = bitcast <64 x i8> %".919" to <16 x i32>
  %".921" = bitcast <64 x i8> %".915" to <16 x i32>
  %".922" = call <16 x i32> @"llvm.x86.avx512.vpdpbusd.512"(<16 x i32> %".914", <16 x i32> %".920", <16 x i32> %".921")
  %".923" = bitcast <64 x i8> <i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1> to <16 x i32>
  %".924" = bitcast <64 x i8> %".915" to <16 x i32>
  %".925" = call <16 x i32> @"llvm.x86.avx512.vpdpbusd.512"(<16 x i32> <i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0>, <16 x i32> %".923", <16 x i32> %".924")
  %".926" = sub <16 x i32> %".922", %".925"
  %".927" = bitcast <16 x i32> %".926" to <64 x i8>
  store <64 x i8> %".927", <64 x i8>* %"v29"
  %".929" = load i64, i64* %"r15"
  %".930" = sub i64 %".929", 1
  store i64 %".930", i64* %"r15"
  %".932" = icmp ne i64 %".930", 0
  br i1 %".932", label %"dispatch24", label %"end"
go24.1:
  %".942" = load i64, i64* %"cnt1"
  %".943" = add i64 %".942", 1
  store i64 %".943", i64* %"cnt1"
  %".945" = load i64, i64* %"r7"
  %".946" = icmp eq i64 %".945", 0
  %".947" = zext i1 %".946" to i64
  store i64 %".947", i64* %"r14"
  %".949" = load i64, i64* %"flags"
  %".950" = and i64 %".949", -2
  %".951" = or i64 %".950", %".947"
  store i64 %".951", i64* %"flags"
  %".953" = load i64, i64* %"flags"
  %".954" = and i64 %".953", 1
  %".955" = icmp ne i64 %".954", 0
  br i1 %".955", label %"fsiw27", label %"fsiw26"
go27.1:
  %".967" = load i64, i64* %"cnt3"
  %".968" = add i64 %".967", 1
  store i64 %".968", i64* %"cnt3"
  %".970" = load <64 x i8>, <64 x i8>* %"v3"
  store <64 x i8> %".970", <64 x i8>* %"m3"
  store i64 64, i64* %"ml3"
  %".973" = load <64 x i8>, <64 x i8>* %"m3"
  store <64 x i8> %".973", <64 x i8>* %"v1"
  %".975" = load <64 x i8>, <64 x i8>* %"v4"
  %".976" = bitcast <64 x i8> %".975" to <16 x float>
  %".977" = load <64 x i8>, <64 x i8>* %"v16"
  %".978" = bitcast <64 x i8> %".977" to <32 x i16>
  %".979" = zext <32 x i16> %".978" to <32 x i32>
  %".980" = shl <32 x i32> %".979", <i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16>
  %".981" = bitcast <32 x i32> %".980" to <32 x float>
  %".982" = load <64 x i8>, <64 x i8>* %"v7"
  %".983" = bitcast <64 x i8> %".982" to <32 x i16>
  %".984" = zext <32 x i16> %".983" to <32 x i32>
  %".985" = shl <32 x i32> %".984", <i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16>
  %".986" = bitcast <32 x i32> %".985" to <32 x float>
  %".987" = shufflevector <32 x float> %".981", <32 x float> %".981", <16 x i32> <i32 0, i32 2, i32 4, i32 6, i32 8, i32 10, i32 12, i32 14, i32 16, i32 18, i32 20, i32 22, i32 24, i32 26, i32 28, i32 30>
  %".988" = shufflevector <32 x float> %".986", <32 x float> %".986", <16 x i32> <i32 0, i32 2, i32 4, i32 6, i32 8, i32 10, i32 12, i32 14, i32 16, i32 18, i32 20, i32 22, i32 24, i32 26, i32 28, i32 30>
  %".989" = fmul <16 x float> %".987", %".988"
  %".990" = shufflevector <32 x float> %".981", <32 x float> %".981", <16 x i32> <i32 1, i32 3, i32 5, i32 7, i32 9, i32 11, i32 13, i32 15, i32 17, i32 19, i32 21, i32 23, i32 25, i32 27, i32 29, i32 31>
  %".991" = shufflevector <32 x float> %".986", <32 x float> %".986", <16 x i32> <i32 1, i32 3, i32 5, i32 7, i32 9, i32 11, i32 13, i32 15, i32 17, i32 19, i32 21, i32 23, i32 25, i32 27, i32 29, i32 31>
  %".992" = fmul <16 x float> %".990", %".991"
  %".993" = fadd <16 x float> %".976", %".989"
  %".994" = fadd <16 x float> %".993", %".992"
  %".995" = bitcast <16 x float> %".994" to <16 x i32>
  %".996" = call <16 x i1> @"llvm.x86.avx512.mask.cmp.ps.512"(<16 x float> %".994", <16 x float> %".994", i32 3, <16 x i1> <i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1>, i32 4)
  %".997" = select  <16 x i1> %".996", <16 x i32> <i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344>, <16 x i32> %".995"
  %".998" = bitcast <16 x i32> %".997" to <16 x float>
  %".999" = bitcast <16 x float> %".998" to <64 x i8>
  store <64 x i8> %".999", <64 x i8>* %"v4"
  %".1001" = load <64 x i8>, <64 x i8>* %"v12"
  %".1002" = bitcast <64 x i8> %".1001" to <16 x float>
  %".1003" = call <16 x float> @"llvm.sqrt.v16f32"(<16 x float> %".1002")
  %".1004" = bitcast <16 x float> %".1003" to <64 x i8>
  store <64 x i8> %".1004", <64 x i8>* %"v18"
  %".1006" = load <64 x i8>, <64 x i8>* %"v7"
  %".1007" = bitcast <64 x i8> %".1006" to <32 x i16>
  %".1008" = or <32 x i16> %".1007", <i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009, i16 -2009>
  %".1009" = bitcast <32 x i16> %".1008" to <64 x i8>
  store <64 x i8> %".1009", <64 x i8>* %"v10"
  %".1011" = load i128, i128* %"p0"
  %".1012" = lshr i128 %".1011", 10
  %".1013" = and i128 %".1012", 1023
  %".1014" = trunc i128 %".1013" to i64
  %".1015" = add i64 %".1014", 1
  store i64 %".1015", i64* %"r2"
  %".1017" = load <64 x i8>, <64 x i8>* %"v31"
  %".1018" = bitcast <64 x i8> %".1017" to <8 x i64>
  %".1019" = load <64 x i8>, <64 x i8>* %"v12"
  %".1020" = bitcast <64 x i8> %".1019" to <8 x i64>
  %".1021" = load <64 x i8>, <64 x i8>* %"v0"
  %".1022" = bitcast <64 x i8> %".1021" to <8 x i64>
  %".1023" = mul <8 x i64> %".1018", %".1020"
  %".1024" = add <8 x i64> %".1023", %".1022"
  %".1025" = bitcast <8 x i64> %".1024" to <64 x i8>
  store <64 x i8> %".1025", <64 x i8>* %"v4"
  %".1027" = load <64 x i8>, <64 x i8>* %"v19"
  %".1028" = bitcast <64 x i8> %".1027" to <32 x i16>
  %".1029" = load <64 x i8>, <64 x i8>* %"v19"
  %".1030" = bitcast <64 x i8> %".1029" to <32 x i16>
  %".1031" = and <32 x i16> %".1030", <i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31, i16 31>
  %".1032" = extractelement <32 x i16> %".1031", i32 0
  %".1033" = extractelement <32 x i16> %".1028", i16 %".1032"
  %".1034" = insertelement <32 x i16> <i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0, i16 0>, i16 %".1033", i32 0
  %".1035" = extractelement <32 x i16> %".1031", i32 1
  %".1036" = extractelement <32 x i16> %".1028", i16 %".1035"
  %".1037" = insertelement <32 x i16> %".1034", i16 %".1036", i32 1
  %".1038" = extractelement <32 x i16> %".1031", i32 2
  %".1039" = extractelement <32 x i16> %".1028", i16 %".1038"
  %".1040" = insertelement <32 x i16> %".1037", i16 %".1039", i32 2
  %".1041" = extractelement <32 x i16> %".1031", i32 3
  %".1042" = extractelement <32 x i16> %".1028", i16 %".1041"
  %".1043" = insertelement <32 x i16> %".1040", i16 %".1042", i32 3
  %".1044" = extractelement <32 x i16> %".1031", i32 4
  %".1045" = extractelement <32 x i16> %".1028", i16 %".1044"
  %".1046" = insertelement <32 x i16> %".1043", i16 %".1045", i32 4
  %".1047" = extractelement <32 x i16> %".1031", i32 5
  %".1048" = extractelement <32 x i16> %".1028", i16 %".1047"
  %".1049" = insertelement <32 x i16> %".1046", i16 %".1048", i32 5
  %".1050" = extractelement <32 x i16> %".1031", i32 6
  %".1051" = extractelement <32 x i16> %".1028", i16 %".1050"
  %".1052" = insertelement <32 x i16> %".1049", i16 %".1051", i32 6
  %".1053" = extractelement <32 x i16> %".1031", i32 7
  %".1054" = extractelement <32 x i16> %".1028", i16 %".1053"
  %".1055" = insertelement <32 x i16> %".1052", i16 %".1054", i32 7
  %".1056" = extractelement <32 x i16> %".1031", i32 8
  %".1057" = extractelement <32 x i16> %".1028", i16 %".1056"
  %".1058" = insertelement <32 x i16> %".1055", i16 %".1057", i32 8
  %".1059" = extractelement <32 x i16> %".1031", i32 9
  %".1060" = extractelement <32 x i16> %".1028", i16 %".1059"
  %".1061" = insertelement <32 x i16> %".1058", i16 %".1060", i32 9
  %".1062" = extractelement <32 x i16> %".1031", i32 10
  %".1063" = extractelement <32 x i16> %".1028", i16 %".1062"
  %".1064" = insertelement <32 x i16> %".1061", i16 %".1063", i32 10
  %".1065" = extractelement <32 x i16> %".1031", i32 11
  %".1066" = extractelement <32 x i16> %".1028", i16 %".1065"
  %".1067" = insertelement <32 x i16> %".1064", i16 %".1066", i32 11
  %".1068" = extractelement <32 x i16> %".1031", i32 12
  %".1069" = extractelement <32 x i16> %".1028", i16 %".1068"
  %".1070" = insertelement <32 x i16> %".1067", i16 %".1069", i32 12
  %".1071" = extractelement <32 x i16> %".1031", i32 13
  %".1072" = extractelement <32 x i16> %".1028", i16 %".1071"
  %".1073" = insertelement <32 x i16> %".1070", i16 %".1072", i32 13
  %".1074" = extractelement <32 x i16> %".1031", i32 14
  %".1075" = extractelement <32 x i16> %".1028", i16 %".1074"
  %".1076" = insertelement <32 x i16> %".1073", i16 %".1075", i32 14
  %".1077" = extractelement <32 x i16> %".1031", i32 15
  %".1078" = extractelement <32 x i16> %".1028", i16 %".1077"
  %".1079" = insertelement <32 x i16> %".1076", i16 %".1078", i32 15
  %".1080" = extractelement <32 x i16> %".1031", i32 16
  %".1081" = extractelement <32 x i16> %".1028", i16 %".1080"
  %".1082" = insertelement <32 x i16> %".1079", i16 %".1081", i32 16
  %".1083" = extractelement <32 x i16> %".1031", i32 17
  %".1084" = extractelement <32 x i16> %".1028", i16 %".1083"
  %".1085" = insertelement <32 x i16> %".1082", i16 %".1084", i32 17
  %".1086" = extractelement <32 x i16> %".1031", i32 18
  %".1087" = extractelement <32 x i16> %".1028", i16 %".1086"
  %".1088" = insertelement <32 x i16> %".1085", i16 %".1087", i32 18
  %".1089" = extractelement <32 x i16> %".1031", i32 19
  %".1090" = extractelement <32 x i16> %".1028", i16 %".1089"
  %".1091" = insertelement <32 x i16> %".1088", i16 %".1090", i32 19
  %".1092" = extractelement <32 x i16> %".1031", i32 20
  %".1093" = extractelement <32 x i16> %".1028", i16 %".1092"
  %".1094" = insertelement <32 x i16> %".1091", i16 %".1093", i32 20
  %".1095" = extractelement <32 x i16> %".1031", i32 21
  %".1096" = extractelement <32 x i16> %".1028", i16 %".1095"
  %".1097" = insertelement <32 x i16> %".1094", i16 %".1096", i32 21
  %".1098" = extractelement <32 x i16> %".1031", i32 22
  %".1099" = extractelement <32 x i16> %".1028", i16 %".1098"
  %".1100" = insertelement <32 x i16> %".1097", i16 %".1099", i32 22
  %".1101" = extractelement <32 x i16> %".1031", i32 23
  %".1102" = extractelement <32 x i16> %".1028", i16 %".1101"
  %".1103" = insertelement <32 x i16> %".1100", i16 %".1102", i32 23
  %".1104" = extractelement <32 x i16> %".1031", i32 24
  %".1105" = extractelement <32 x i16> %".1028", i16 %".1104"
  %".1106" = insertelement <32 x i16> %".1103", i16 %".1105", i32 24
  %".1107" = extractelement <32 x i16> %".1031", i32 25
  %".1108" = extractelement <32 x i16> %".1028", i16 %".1107"
  %".1109" = insertelement <32 x i16> %".1106", i16 %".1108", i32 25
  %".1110" = extractelement <32 x i16> %".1031", i32 26
  %".1111" = extractelement <32 x i16> %".1028", i16 %".1110"
  %".1112" = insertelement <32 x i16> %".1109", i16 %".1111", i32 26
  %".1113" = extractelement <32 x i16> %".1031", i32 27
  %".1114" = extractelement <32 x i16> %".1028", i16 %".1113"
  %".1115" = insertelement <32 x i16> %".1112", i16 %".1114", i32 27
  %".1116" = extractelement <32 x i16> %".1031", i32 28
  %".1117" = extractelement <32 x i16> %".1028", i16 %".1116"
  %".1118" = insertelement <32 x i16> %".1115", i16 %".1117", i32 28
  %".1119" = extractelement <32 x i16> %".1031", i32 29
  %".1120" = extractelement <32 x i16> %".1028", i16 %".1119"
  %".1121" = insertelement <32 x i16> %".1118", i16 %".1120", i32 29
  %".1122" = extractelement <32 x i16> %".1031", i32 30
  %".1123" = extractelement <32 x i16> %".1028", i16 %".1122"
  %".1124" = insertelement <32 x i16> %".1121", i16 %".1123", i32 30
  %".1125" = extractelement <32 x i16> %".1031", i32 31
  %".1126" = extractelement <32 x i16> %".1028", i16 %".1125"
  %".1127" = insertelement <32 x i16> %".1124", i16 %".1126", i32 31
  %".1128" = bitcast <32 x i16> %".1127" to <64 x i8>
  store <64 x i8> %".1128", <64 x i8>* %"v5"
  %".1130" = load <64 x i8>, <64 x i8>* %"v7"
  store <64 x i8> %".1130", <64 x i8>* %"m3"
  store i64 64, i64* %"ml3"
  %".1133" = load <64 x i8>, <64 x i8>* %"m3"
  %".1134" = bitcast <64 x i8> %".1133" to <8 x i64>
  %".1135" = extractelement <8 x i64> %".1134", i32 0
  store i64 %".1135", i64* %"r2"
  %".1137" = load <64 x i8>, <64 x i8>* %"v10"
  %".1138" = bitcast <64 x i8> %".1137" to <16 x i32>
  %".1139" = load <64 x i8>, <64 x i8>* %"v26"
  %".1140" = bitcast <64 x i8> %".1139" to <16 x i32>
  %".1141" = xor <16 x i32> %".1138", %".1140"
  %".1142" = bitcast <16 x i32> %".1141" to <64 x i8>
  store <64 x i8> %".1142", <64 x i8>* %"v26"
  %".1144" = load <64 x i8>, <64 x i8>* %"v10"
  %".1145" = bitcast <64 x i8> %".1144" to <16 x i32>
  %".1146" = shufflevector <16 x i32> %".1145", <16 x i32> %".1145", <16 x i32> <i32 0, i32 1, i32 2, i32 3, i32 4, i32 5, i32 6, i32 7, i32 8, i32 9, i32 10, i32 11, i32 12, i32 13, i32 14, i32 15>
  %".1147" = sext <16 x i32> %".1146" to <16 x i64>
  %".1148" = mul <16 x i64> %".1147", <i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4, i64 4>
  %".1149" = icmp sgt i64 46, 4611686018427387904
  %".1150" = icmp slt i64 46, -4611686018427387904
  %".1151" = or i1 %".1149", %".1150"
  %".1152" = or i1 0, %".1151"
  %".1153" = load i64, i64* %"fasthits"
  %".1154" = add i64 %".1153", 1
  store i64 %".1154", i64* %"fasthits"
  %".1156" = load ptr, ptr %"tptr2"
  %".1157" = load i64, i64* %"tsize2"
  %".1158" = insertelement <16 x i64> <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>, i64 46, i32 0
  %".1159" = shufflevector <16 x i64> %".1158", <16 x i64> %".1158", <16 x i32> <i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0>
  %".1160" = add <16 x i64> %".1159", %".1148"
  %".1161" = sub i64 %".1157", 4
  %".1162" = insertelement <16 x i64> <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>, i64 %".1161", i32 0
  %".1163" = shufflevector <16 x i64> %".1162", <16 x i64> %".1162", <16 x i32> <i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0>
  %".1164" = icmp slt <16 x i64> %".1160", <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>
  %".1165" = icmp sgt <16 x i64> %".1160", %".1163"
  %".1166" = or <16 x i1> %".1164", %".1165"
  %".1167" = call i1 @"llvm.vector.reduce.or.v16i1"(<16 x i1> %".1166")
  %".1168" = or i1 %".1152", %".1167"
  br i1 %".1168", label %"fault", label %"ok_37_1.2", !prof !1
ok_37_1.2:
  %".1170" = load <64 x i8>, <64 x i8>* %"v0"
  %".1171" = bitcast <64 x i8> %".1170" to <16 x i32>
  %".1172" = extractelement <16 x i64> %".1160", i32 0
  %".1173" = extractelement <16 x i32> %".1171", i32 0
  %".1174" = getelementptr i8, ptr %".1156", i64 %".1172"
  store i32 %".1173", ptr %".1174", align 1
  %".1176" = extractelement <16 x i64> %".1160", i32 1
  %".1177" = extractelement <16 x i32> %".1171", i32 1
  %".1178" = getelementptr i8, ptr %".1156", i64 %".1176"
  store i32 %".1177", ptr %".1178", align 1
  %".1180" = extractelement <16 x i64> %".1160", i32 2
  %".1181" = extractelement <16 x i32> %".1171", i32 2
  %".1182" = getelementptr i8, ptr %".1156", i64 %".1180"
  store i32 %".1181", ptr %".1182", align 1
  %".1184" = extractelement <16 x i64> %".1160", i32 3
  %".1185" = extractelement <16 x i32> %".1171", i32 3
  %".1186" = getelementptr i8, ptr %".1156", i64 %".1184"
  store i32 %".1185", ptr %".1186", align 1
  %".1188" = extractelement <16 x i64> %".1160", i32 4
  %".1189" = extractelement <16 x i32> %".1171", i32 4
  %".1190" = getelementptr i8, ptr %".1156", i64 %".1188"
  store i32 %".1189", ptr %".1190", align 1
  %".1192" = extractelement <16 x i64> %".1160", i32 5
  %".1193" = extractelement <16 x i32> %".1171", i32 5
  %".1194" = getelementptr i8, ptr %".1156", i64 %".1192"
  store i32 %".1193", ptr %".1194", align 1
  %".1196" = extractelement <16 x i64> %".1160", i32 6
  %".1197" = extractelement <16 x i32> %".1171", i32 6
  %".1198" = getelementptr i8, ptr %".1156", i64 %".1196"
  store i32 %".1197", ptr %".1198", align 1
  %".1200" = extractelement <16 x i64> %".1160", i32 7
  %".1201" = extractelement <16 x i32> %".1171", i32 7
  %".1202" = getelementptr i8, ptr %".1156", i64 %".1200"
  store i32 %".1201", ptr %".1202", align 1
  %".1204" = extractelement <16 x i64> %".1160", i32 8
  %".1205" = extractelement <16 x i32> %".1171", i32 8
  %".1206" = getelementptr i8, ptr %".1156", i64 %".1204"
  store i32 %".1205", ptr %".1206", align 1
  %".1208" = extractelement <16 x i64> %".1160", i32 9
  %".1209" = extractelement <16 x i32> %".1171", i32 9
  %".1210" = getelementptr i8, ptr %".1156", i64 %".1208"
  store i32 %".1209", ptr %".1210", align 1
  %".1212" = extractelement <16 x i64> %".1160", i32 10
  %".1213" = extractelement <16 x i32> %".1171", i32 10
  %".1214" = getelementptr i8, ptr %".1156", i64 %".1212"
  store i32 %".1213", ptr %".1214", align 1
  %".1216" = extractelement <16 x i64> %".1160", i32 11
  %".1217" = extractelement <16 x i32> %".1171", i32 11
  %".1218" = getelementptr i8, ptr %".1156", i64 %".1216"
  store i32 %".1217", ptr %".1218", align 1
  %".1220" = extractelement <16 x i64> %".1160", i32 12
  %".1221" = extractelement <16 x i32> %".1171", i32 12
  %".1222" = getelementptr i8, ptr %".1156", i64 %".1220"
  store i32 %".1221", ptr %".1222", align 1
  %".1224" = extractelement <16 x i64> %".1160", i32 13
  %".1225" = extractelement <16 x i32> %".1171", i32 13
  %".1226" = getelementptr i8, ptr %".1156", i64 %".1224"
  store i32 %".1225", ptr %".1226", align 1
  %".1228" = extractelement <16 x i64> %".1160", i32 14
  %".1229" = extractelement <16 x i32> %".1171", i32 14
  %".1230" = getelementptr i8, ptr %".1156", i64 %".1228"
  store i32 %".1229", ptr %".1230", align 1
  %".1232" = extractelement <16 x i64> %".1160", i32 15
  %".1233" = extractelement <16 x i32> %".1171", i32 15
  %".1234" = getelementptr i8, ptr %".1156", i64 %".1232"
  store i32 %".1233", ptr %".1234", align 1
  %".1236" = load <64 x i8>, <64 x i8>* %"v2"
  %".1237" = bitcast <64 x i8> %".1236" to <16 x float>
  %".1238" = load <64 x i8>, <64 x i8>* %"v20"
  %".1239" = bitcast <64 x i8> %".1238" to <32 x i16>
  %".1240" = zext <32 x i16> %".1239" to <32 x i32>
  %".1241" = shl <32 x i32> %".1240", <i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16>
  %".1242" = bitcast <32 x i32> %".1241" to <32 x float>
  %".1243" = load <64 x i8>, <64 x i8>* %"v24"
  %".1244" = bitcast <64 x i8> %".1243" to <32 x i16>
  %".1245" = zext <32 x i16> %".1244" to <32 x i32>
  %".1246" = shl <32 x i32> %".1245", <i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16, i32 16>
  %".1247" = bitcast <32 x i32> %".1246" to <32 x float>
  %".1248" = shufflevector <32 x float> %".1242", <32 x float> %".1242", <16 x i32> <i32 0, i32 2, i32 4, i32 6, i32 8, i32 10, i32 12, i32 14, i32 16, i32 18, i32 20, i32 22, i32 24, i32 26, i32 28, i32 30>
  %".1249" = shufflevector <32 x float> %".1247", <32 x float> %".1247", <16 x i32> <i32 0, i32 2, i32 4, i32 6, i32 8, i32 10, i32 12, i32 14, i32 16, i32 18, i32 20, i32 22, i32 24, i32 26, i32 28, i32 30>
  %".1250" = fmul <16 x float> %".1248", %".1249"
  %".1251" = shufflevector <32 x float> %".1242", <32 x float> %".1242", <16 x i32> <i32 1, i32 3, i32 5, i32 7, i32 9, i32 11, i32 13, i32 15, i32 17, i32 19, i32 21, i32 23, i32 25, i32 27, i32 29, i32 31>
  %".1252" = shufflevector <32 x float> %".1247", <32 x float> %".1247", <16 x i32> <i32 1, i32 3, i32 5, i32 7, i32 9, i32 11, i32 13, i32 15, i32 17, i32 19, i32 21, i32 23, i32 25, i32 27, i32 29, i32 31>
  %".1253" = fmul <16 x float> %".1251", %".1252"
  %".1254" = fadd <16 x float> %".1237", %".1250"
  %".1255" = fadd <16 x float> %".1254", %".1253"
  %".1256" = bitcast <16 x float> %".1255" to <16 x i32>
  %".1257" = call <16 x i1> @"llvm.x86.avx512.mask.cmp.ps.512"(<16 x float> %".1255", <16 x float> %".1255", i32 3, <16 x i1> <i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1, i1 1>, i32 4)
  %".1258" = select  <16 x i1> %".1257", <16 x i32> <i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344, i32 2143289344>, <16 x i32> %".1256"
  %".1259" = bitcast <16 x i32> %".1258" to <16 x float>
  %".1260" = bitcast <16 x float> %".1259" to <64 x i8>
  store <64 x i8> %".1260", <64 x i8>* %"v2"
  %".1262" = load i64, i64* %"fasthits"
  %".1263" = add i64 %".1262", 1
  store i64 %".1263", i64* %"fasthits"
  %".1265" = load ptr, ptr %"tptr1"
  %".1266" = load i64, i64* %"tsize1"
  %".1267" = icmp slt i64 192, 0
  %".1268" = sub i64 %".1266", 1
  %".1269" = icmp sgt i64 192, %".1268"
  %".1270" = or i1 %".1267", %".1269"
  br i1 %".1270", label %"fault", label %"ok_38_1.2", !prof !1
ok_38_1.2:
  %".1272" = getelementptr i8, ptr %".1265", i64 192
  %".1273" = load i8, ptr %".1272", align 1
  %".1274" = sext i8 %".1273" to i64
  store i64 %".1274", i64* %"r4"
  %".1276" = load <64 x i8>, <64 x i8>* %"v16"
  %".1277" = bitcast <64 x i8> %".1276" to <8 x i64>
  %".1278" = icmp slt <8 x i64> %".1277", <i64 78, i64 78, i64 78, i64 78, i64 78, i64 78, i64 78, i64 78>
  %".1279" = select  <8 x i1> %".1278", <8 x i64> %".1277", <8 x i64> <i64 78, i64 78, i64 78, i64 78, i64 78, i64 78, i64 78, i64 78>
  %".1280" = bitcast <8 x i64> %".1279" to <64 x i8>
  store <64 x i8> %".1280", <64 x i8>* %"v8"
  %".1282" = load <64 x i8>, <64 x i8>* %"v0"
  %".1283" = load <64 x i8>, <64 x i8>* %"v11"
  %".1284" = add <64 x i8> %".1282", %".1283"
  store <64 x i8> %".1284", <64 x i8>* %"v2"
  %".1286" = load <64 x i8>, <64 x i8>* %"v5"
  %".1287" = bitcast <64 x i8> %".1286" to <16 x float>
  %".1288" = load <64 x i8>, <64 x i8>* %"v20"
  %".1289" = bitcast <64 x i8> %".1288" to <16 x float>
  %".1290" = fmul <16 x float> %".1287", %".1289"
  %".1291" = bitcast <16 x float> %".1290" to <64 x i8>
  store <64 x i8> %".1291", <64 x i8>* %"v25"
  %".1293" = load i64, i64* %"r3"
  %".1294" = insertelement <8 x i64> <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>, i64 %".1293", i32 0
  %".1295" = bitcast <8 x i64> %".1294" to <64 x i8>
  %".1296" = and <64 x i8> %".1295", <i8 255, i8 255, i8 255, i8 255, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0, i8 0>
  store <64 x i8> %".1296", <64 x i8>* %"m0"
  store i64 4, i64* %"ml0"
  %".1299" = load <64 x i8>, <64 x i8>* %"m0"
  store <64 x i8> %".1299", <64 x i8>* %"v0"
  %".1301" = load <64 x i8>, <64 x i8>* %"v10"
  %".1302" = bitcast <64 x i8> %".1301" to <16 x i32>
  %".1303" = shufflevector <16 x i32> %".1302", <16 x i32> %".1302", <8 x i32> <i32 0, i32 1, i32 2, i32 3, i32 4, i32 5, i32 6, i32 7>
  %".1304" = sext <8 x i32> %".1303" to <8 x i64>
  %".1305" = mul <8 x i64> %".1304", <i64 8, i64 8, i64 8, i64 8, i64 8, i64 8, i64 8, i64 8>
  %".1306" = icmp sgt i64 24, 4611686018427387904
  %".1307" = icmp slt i64 24, -4611686018427387904
  %".1308" = or i1 %".1306", %".1307"
  %".1309" = or i1 0, %".1308"
  %".1310" = load i64, i64* %"fasthits"
  %".1311" = add i64 %".1310", 1
  store i64 %".1311", i64* %"fasthits"
  %".1313" = load ptr, ptr %"tptr1"
  %".1314" = load i64, i64* %"tsize1"
  %".1315" = insertelement <8 x i64> <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>, i64 24, i32 0
  %".1316" = shufflevector <8 x i64> %".1315", <8 x i64> %".1315", <8 x i32> <i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0>
  %".1317" = add <8 x i64> %".1316", %".1305"
  %".1318" = sub i64 %".1314", 8
  %".1319" = insertelement <8 x i64> <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>, i64 %".1318", i32 0
  %".1320" = shufflevector <8 x i64> %".1319", <8 x i64> %".1319", <8 x i32> <i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0>
  %".1321" = icmp slt <8 x i64> %".1317", <i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0, i64 0>
  %".1322" = icmp sgt <8 x i64> %".1317", %".1320"
  %".1323" = or <8 x i1> %".1321", %".1322"
  %".1324" = call i1 @"llvm.vector.reduce.or.v8i1"(<8 x i1> %".1323")
  %".1325" = or i1 %".1309", %".1324"
  br i1 %".1325", label %"fault", label %"ok_44_1.1", !prof !1
ok_44_1.1:
  %".1327" = load <64 x i8>, <64 x i8>* %"v0"
  %".1328" = bitcast <64 x i8> %".1327" to <8 x i64>
  %".1329" = extractelement <8 x i64> %".1317", i32 0
  %".1330" = extractelement <8 x i64> %".1328", i32 0
  %".1331" = getelementptr i8, ptr %".1313", i64 %".1329"
  store i64 %".1330", ptr %".1331", align 1
  %".1333" = extractelement <8 x i64> %".1317", i32 1
  %".1334" = extractelement <8 x i64> %".1328", i32 1
  %".1335" = getelementptr i8, ptr %".1313", i64 %".1333"
  store i64 %".1334", ptr %".1335", align 1
  %".1337" = extractelement <8 x i64> %".1317", i32 2
  %".1338" = extractelement <8 x i64> %".1328", i32 2
  %".1339" = getelementptr i8, ptr %".1313", i64 %".1337"
  store i64 %".1338", ptr %".1339", align 1
  %".1341" = extractelement <8 x i64> %".1317", i32 3
  %".1342" = extractelement <8 x i64> %".1328", i32 3
  %".1343" = getelementptr i8, ptr %".1313", i64 %".1341"
  store i64 %".1342", ptr %".1343", align 1
  %".1345" = extractelement <8 x i64> %".1317", i32 4
  %".1346" = extractelement <8 x i64> %".1328", i32 4
  %".1347" = getelementptr i8, ptr %".1313", i64 %".1345"
  store i64 %".1346", ptr %".1347", align 1
  %".1349" = extractelement <8 x i64> %".1317", i32 5
  %".1350" = extractelement <8 x i64> %".1328", i32 5
  %".1351" = getelementptr i8, ptr %".1313", i64 %".1349"
  store i64 %".1350", ptr %".1351", align 1
  %".1353" = extractelement <8 x i64> %".1317", i32 6
  %".1354" = extractelement <8 x i64> %".1328", i32 6
  %".1355" = getelementptr i8, ptr %".1313", i64 %".1353"
  store i64 %".1354", ptr %".1355", align 1
  %".1357" = extractelement <8 x i64> %".1317", i32 7
  %".1358" = extractelement <8 x i64> %".1328", i32 7
  %".1359" = getelementptr i8, ptr %".1313", i64 %".1357"
  store i64 %".1358", ptr %".1359", align 1
  %".1361" = load <64 x i8>, <64 x i8>* %"v29"
  %".1362" = bitcast <64 x i8> %".1361" to <16 x i32>
  %".1363" = load <64 x i8>, <64 x i8>* %"v26"
  %".1364" = load <64 x i8>, <64 x i8>* %"v2"
  %".1365" = shufflevector <64 x i8> %".1364", <64 x i8> %".1364", <64 x i32> <i32 0, i32 1, i32 0, i32 1, i32 0, i32 1, i32 0, i32 1, i32 2, i32 3, i32 2, i32 3, i32 2, i32 3, i32 2, i32 3, i32 4, i32 5, i32 4, i32 5, i32 4, i32 5, i32 4, i32 5, i32 6, i32 7, i32 6, i32 7, i32 6, i32 7, i32 6, i32 7, i32 8, i32 9, i32 8, i32 9, i32 8, i32 9, i32 8, i32 9, i32 10, i32 11, i32 10, i32 11, i32 10, i32 11, i32 10, i32 11, i32 12, i32 13, i32 12, i32 13, i32 12, i32 13, i32 12, i32 13, i32 14, i32 15, i32 14, i32 15, i32 14, i32 15, i32 14, i32 15>
  %".1366" = call <64 x i8> @"llvm.x86.avx512.pmultishift.qb.512"(<64 x i8> <i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14, i8 0, i8 2, i8 4, i8 6, i8 8, i8 10, i8 12, i8 14>, <64 x i8> %".1365")
  %".1367" = and <64 x i8> %".1366", <i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3, i8 3>
  %".1368" = bitcast <64 x i8> %".1367" to <16 x i32>
  %".1369" = bitcast <64 x i8> %".1363" to <16 x i32>
  %".1370" = call <16 x i32> @"llvm.x86.avx512.vpdpbusd.512"(<16 x i32> %".1362", <16 x i32> %".1368", <16 x i32> %".1369")
  %".1371" = bitcast <64 x i8> <i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1, i8 1> to <16 x i32>
  %".1372" = bitcast <64 x i8> %".1363" to <16 x i32>
  %".1373" = call <16 x i32> @"llvm.x86.avx512.vpdpbusd.512"(<16 x i32> <i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0, i32 0>, <16 x i32> %".1371", <16 x i32> %".1372")
  %".1374" = sub <16 x i32> %".1370", %".1373"
  %".1375" = bitcast <16 x i32> %".1374" to <64 x i8>
  store <64 x i8> %".1375", <64 x i8>* %"v29"
  %".1377" = load i64, i64* %"r15"
  %".1378" = sub i64 %".1377", 1
  store i64 %".1378", i64* %"r15"
  %".1380" = icmp ne i64 %".1378", 0
  br i1 %".1380", label %"fsiw24", label %"end"
}

declare i64 @"llvm.readcyclecounter"()

define internal i64 @"vtpu_ppt_translate"(ptr %".1", i64 %".2", i64 %".3") cold noinline nounwind
{
entry:
  %".5" = zext i64 %".3" to i128
  %".6" = shl i128 %".5", 64
  %".7" = zext i64 %".2" to i128
  %".8" = or i128 %".6", %".7"
  %".9" = lshr i128 %".8", 80
  %".10" = and i128 %".9", 1023
  %".11" = trunc i128 %".10" to i64
  %".12" = getelementptr inbounds [1024 x i128], [1024 x i128]* @"vtpu_spread", i64 0, i64 %".11"
  %".13" = load i128, [1024 x i128]* %".12"
  %".14" = shl i128 %".13", 8
  %".15" = or i128 0, %".14"
  %".16" = lshr i128 %".8", 70
  %".17" = and i128 %".16", 1023
  %".18" = trunc i128 %".17" to i64
  %".19" = getelementptr inbounds [1024 x i128], [1024 x i128]* @"vtpu_spread", i64 0, i64 %".18"
  %".20" = load i128, [1024 x i128]* %".19"
  %".21" = shl i128 %".20", 7
  %".22" = or i128 %".15", %".21"
  %".23" = lshr i128 %".8", 60
  %".24" = and i128 %".23", 1023
  %".25" = trunc i128 %".24" to i64
  %".26" = getelementptr inbounds [1024 x i128], [1024 x i128]* @"vtpu_spread", i64 0, i64 %".25"
  %".27" = load i128, [1024 x i128]* %".26"
  %".28" = shl i128 %".27", 6
  %".29" = or i128 %".22", %".28"
  %".30" = lshr i128 %".8", 50
  %".31" = and i128 %".30", 1023
  %".32" = trunc i128 %".31" to i64
  %".33" = getelementptr inbounds [1024 x i128], [1024 x i128]* @"vtpu_spread", i64 0, i64 %".32"
  %".34" = load i128, [1024 x i128]* %".33"
  %".35" = shl i128 %".34", 5
  %".36" = or i128 %".29", %".35"
  %".37" = lshr i128 %".8", 40
  %".38" = and i128 %".37", 1023
  %".39" = trunc i128 %".38" to i64
  %".40" = getelementptr inbounds [1024 x i128], [1024 x i128]* @"vtpu_spread", i64 0, i64 %".39"
  %".41" = load i128, [1024 x i128]* %".40"
  %".42" = shl i128 %".41", 4
  %".43" = or i128 %".36", %".42"
  %".44" = lshr i128 %".8", 30
  %".45" = and i128 %".44", 1023
  %".46" = trunc i128 %".45" to i64
  %".47" = getelementptr inbounds [1024 x i128], [1024 x i128]* @"vtpu_spread", i64 0, i64 %".46"
  %".48" = load i128, [1024 x i128]* %".47"
  %".49" = shl i128 %".48", 3
  %".50" = or i128 %".43", %".49"
  %".51" = lshr i128 %".8", 20
  %".52" = and i128 %".51", 1023
  %".53" = trunc i128 %".52" to i64
  %".54" = getelementptr inbounds [1024 x i128], [1024 x i128]* @"vtpu_spread", i64 0, i64 %".53"
  %".55" = load i128, [1024 x i128]* %".54"
  %".56" = shl i128 %".55", 2
  %".57" = or i128 %".50", %".56"
  %".58" = lshr i128 %".8", 10
  %".59" = and i128 %".58", 1023
  %".60" = trunc i128 %".59" to i64
  %".61" = getelementptr inbounds [1024 x i128], [1024 x i128]* @"vtpu_spread", i64 0, i64 %".60"
  %".62" = load i128, [1024 x i128]* %".61"
  %".63" = shl i128 %".62", 1
  %".64" = or i128 %".57", %".63"
  %".65" = lshr i128 %".8", 0
  %".66" = and i128 %".65", 1023
  %".67" = trunc i128 %".66" to i64
  %".68" = getelementptr inbounds [1024 x i128], [1024 x i128]* @"vtpu_spread", i64 0, i64 %".67"
  %".69" = load i128, [1024 x i128]* %".68"
  %".70" = shl i128 %".69", 0
  %".71" = or i128 %".64", %".70"
  %".72" = trunc i128 %".71" to i64
  %".73" = lshr i128 %".71", 64
  %".74" = trunc i128 %".73" to i64
  %".75" = xor i64 %".72", %".74"
  %".76" = mul i64 %".75", -7046029254386353131
  %".77" = lshr i64 %".76", 58
  %".78" = getelementptr inbounds i8, ptr %".1", i64 432
  store i64 %".77", ptr %".78", align 1
  %".80" = getelementptr inbounds i8, ptr %".1", i64 352
  %".81" = load ptr, ptr %".80", align 1
  %".82" = getelementptr i64, ptr %".81", i64 %".77"
  %".83" = load i64, ptr %".82"
  %".84" = mul i64 %".77", 16
  %".85" = add i64 64, %".84"
  br label %"search"
search:
  %".87" = phi  i64 [0, %"entry"], [%".103", %"body"]
  %".88" = icmp ult i64 %".87", %".83"
  br i1 %".88", label %"body", label %"miss"
body:
  %".90" = mul i64 %".87", 4
  %".91" = add i64 %".90", 0
  %".92" = add i64 %".85", %".91"
  %".93" = getelementptr i64, ptr %".81", i64 %".92"
  %".94" = load i64, ptr %".93"
  %".95" = icmp eq i64 %".94", %".2"
  %".96" = mul i64 %".87", 4
  %".97" = add i64 %".96", 1
  %".98" = add i64 %".85", %".97"
  %".99" = getelementptr i64, ptr %".81", i64 %".98"
  %".100" = load i64, ptr %".99"
  %".101" = icmp eq i64 %".100", %".3"
  %".102" = and i1 %".95", %".101"
  %".103" = add i64 %".87", 1
  br i1 %".102", label %"hit", label %"search"
hit:
  %".105" = getelementptr inbounds i8, ptr %".1", i64 488
  %".106" = load i64, ptr %".105", align 1
  %".107" = add i64 %".106", 1
  store i64 %".107", ptr %".105", align 1
  %".109" = mul i64 %".87", 4
  %".110" = add i64 %".109", 2
  %".111" = add i64 %".85", %".110"
  %".112" = getelementptr i64, ptr %".81", i64 %".111"
  %".113" = load i64, ptr %".112"
  %".114" = mul i64 %".87", 4
  %".115" = add i64 %".114", 3
  %".116" = add i64 %".85", %".115"
  %".117" = getelementptr i64, ptr %".81", i64 %".116"
  %".118" = load i64, ptr %".117"
  %".119" = sub i64 %".83", 1
  br label %"place"
miss:
  %".121" = getelementptr inbounds i8, ptr %".1", i64 496
  %".122" = load i64, ptr %".121", align 1
  %".123" = add i64 %".122", 1
  store i64 %".123", ptr %".121", align 1
  %".125" = getelementptr inbounds i8, ptr %".1", i64 440
  %".126" = load ptr, ptr %".125", align 1
  %".127" = getelementptr inbounds i8, ptr %".1", i64 480
  %".128" = load i64, ptr %".127", align 1
  %".129" = shl i64 %".3", 32
  %".130" = xor i64 %".2", %".129"
  %".131" = mul i64 %".130", -7046029254386353131
  %".132" = lshr i64 %".131", 40
  %".133" = and i64 %".132", %".128"
  br label %"probe"
place:
  %".167" = phi  i64 [%".87", %"hit"], [%".161", %"found"]
  %".168" = phi  i64 [%".119", %"hit"], [%".162", %"found"]
  %".169" = phi  i64 [%".113", %"hit"], [%".155", %"found"]
  %".170" = phi  i64 [%".118", %"hit"], [%".159", %"found"]
  br label %"move"
probe:
  %".135" = phi  i64 [%".133", %"miss"], [%".148", %"probe_next"]
  %".136" = mul i64 %".135", 4
  %".137" = add i64 %".136", 1
  %".138" = getelementptr i64, ptr %".126", i64 %".137"
  %".139" = load i64, ptr %".138"
  %".140" = mul i64 %".135", 4
  %".141" = getelementptr i64, ptr %".126", i64 %".140"
  %".142" = load i64, ptr %".141"
  %".143" = icmp eq i64 %".139", %".3"
  %".144" = icmp eq i64 %".142", %".2"
  %".145" = and i1 %".143", %".144"
  br i1 %".145", label %"found", label %"probe_next"
probe_next:
  %".147" = add i64 %".135", 1
  %".148" = and i64 %".147", %".128"
  %".149" = icmp eq i64 %".139", 18446744073709551615
  br i1 %".149", label %"absent", label %"probe"
found:
  %".152" = mul i64 %".135", 4
  %".153" = add i64 %".152", 2
  %".154" = getelementptr i64, ptr %".126", i64 %".153"
  %".155" = load i64, ptr %".154"
  %".156" = mul i64 %".135", 4
  %".157" = add i64 %".156", 3
  %".158" = getelementptr i64, ptr %".126", i64 %".157"
  %".159" = load i64, ptr %".158"
  %".160" = icmp uge i64 %".83", 4
  %".161" = select  i1 %".160", i64 0, i64 %".83"
  %".162" = select  i1 %".160", i64 3, i64 %".83"
  %".163" = add i64 %".83", 1
  %".164" = select  i1 %".160", i64 4, i64 %".163"
  store i64 %".164", ptr %".82"
  br label %"place"
absent:
  ret i64 1
move:
  %".172" = phi  i64 [%".167", %"place"], [%".175", %"move_body"]
  %".173" = icmp ult i64 %".172", %".168"
  br i1 %".173", label %"move_body", label %"fin"
move_body:
  %".175" = add i64 %".172", 1
  %".176" = mul i64 %".175", 4
  %".177" = add i64 %".176", 0
  %".178" = add i64 %".85", %".177"
  %".179" = getelementptr i64, ptr %".81", i64 %".178"
  %".180" = load i64, ptr %".179"
  %".181" = mul i64 %".172", 4
  %".182" = add i64 %".181", 0
  %".183" = add i64 %".85", %".182"
  %".184" = getelementptr i64, ptr %".81", i64 %".183"
  store i64 %".180", ptr %".184"
  %".186" = mul i64 %".175", 4
  %".187" = add i64 %".186", 1
  %".188" = add i64 %".85", %".187"
  %".189" = getelementptr i64, ptr %".81", i64 %".188"
  %".190" = load i64, ptr %".189"
  %".191" = mul i64 %".172", 4
  %".192" = add i64 %".191", 1
  %".193" = add i64 %".85", %".192"
  %".194" = getelementptr i64, ptr %".81", i64 %".193"
  store i64 %".190", ptr %".194"
  %".196" = mul i64 %".175", 4
  %".197" = add i64 %".196", 2
  %".198" = add i64 %".85", %".197"
  %".199" = getelementptr i64, ptr %".81", i64 %".198"
  %".200" = load i64, ptr %".199"
  %".201" = mul i64 %".172", 4
  %".202" = add i64 %".201", 2
  %".203" = add i64 %".85", %".202"
  %".204" = getelementptr i64, ptr %".81", i64 %".203"
  store i64 %".200", ptr %".204"
  %".206" = mul i64 %".175", 4
  %".207" = add i64 %".206", 3
  %".208" = add i64 %".85", %".207"
  %".209" = getelementptr i64, ptr %".81", i64 %".208"
  %".210" = load i64, ptr %".209"
  %".211" = mul i64 %".172", 4
  %".212" = add i64 %".211", 3
  %".213" = add i64 %".85", %".212"
  %".214" = getelementptr i64, ptr %".81", i64 %".213"
  store i64 %".210", ptr %".214"
  br label %"move"
fin:
  %".217" = mul i64 %".168", 4
  %".218" = add i64 %".217", 0
  %".219" = add i64 %".85", %".218"
  %".220" = getelementptr i64, ptr %".81", i64 %".219"
  store i64 %".2", ptr %".220"
  %".222" = mul i64 %".168", 4
  %".223" = add i64 %".222", 1
  %".224" = add i64 %".85", %".223"
  %".225" = getelementptr i64, ptr %".81", i64 %".224"
  store i64 %".3", ptr %".225"
  %".227" = mul i64 %".168", 4
  %".228" = add i64 %".227", 2
  %".229" = add i64 %".85", %".228"
  %".230" = getelementptr i64, ptr %".81", i64 %".229"
  store i64 %".169", ptr %".230"
  %".232" = mul i64 %".168", 4
  %".233" = add i64 %".232", 3
  %".234" = add i64 %".85", %".233"
  %".235" = getelementptr i64, ptr %".81", i64 %".234"
  store i64 %".170", ptr %".235"
  %".237" = inttoptr i64 %".169" to ptr
  %".238" = getelementptr inbounds i8, ptr %".1", i64 376
  store ptr %".237", ptr %".238", align 1
  %".240" = getelementptr inbounds i8, ptr %".1", i64 384
  store i64 %".170", ptr %".240", align 1
  ret i64 0
}

@"vtpu_spread" = internal constant [1024 x i128] [i128 0, i128 1, i128 512, i128 513, i128 262144, i128 262145, i128 262656, i128 262657, i128 134217728, i128 134217729, i128 134218240, i128 134218241, i128 134479872, i128 134479873, i128 134480384, i128 134480385, i128 68719476736, i128 68719476737, i128 68719477248, i128 68719477249, i128 68719738880, i128 68719738881, i128 68719739392, i128 68719739393, i128 68853694464, i128 68853694465, i128 68853694976, i128 68853694977, i128 68853956608, i128 68853956609, i128 68853957120, i128 68853957121, i128 35184372088832, i128 35184372088833, i128 35184372089344, i128 35184372089345, i128 35184372350976, i128 35184372350977, i128 35184372351488, i128 35184372351489, i128 35184506306560, i128 35184506306561, i128 35184506307072, i128 35184506307073, i128 35184506568704, i128 35184506568705, i128 35184506569216, i128 35184506569217, i128 35253091565568, i128 35253091565569, i128 35253091566080, i128 35253091566081, i128 35253091827712, i128 35253091827713, i128 35253091828224, i128 35253091828225, i128 35253225783296, i128 35253225783297, i128 35253225783808, i128 35253225783809, i128 35253226045440, i128 35253226045441, i128 35253226045952, i128 35253226045953, i128 18014398509481984, i128 18014398509481985, i128 18014398509482496, i128 18014398509482497, i128 18014398509744128, i128 18014398509744129, i128 18014398509744640, i128 18014398509744641, i128 18014398643699712, i128 18014398643699713, i128 18014398643700224, i128 18014398643700225, i128 18014398643961856, i128 18014398643961857, i128 18014398643962368, i128 18014398643962369, i128 18014467228958720, i128 18014467228958721, i128 18014467228959232, i128 18014467228959233, i128 18014467229220864, i128 18014467229220865, i128 18014467229221376, i128 18014467229221377, i128 18014467363176448, i128 18014467363176449, i128 18014467363176960, i128 18014467363176961, i128 18014467363438592, i128 18014467363438593, i128 18014467363439104, i128 18014467363439105, i128 18049582881570816, i128 18049582881570817, i128 18049582881571328, i128 18049582881571329, i128 18049582881832960, i128 18049582881832961, i128 18049582881833472, i128 18049582881833473, i128 18049583015788544, i128 18049583015788545, i128 18049583015789056, i128 18049583015789057, i128 18049583016050688, i128 18049583016050689, i128 18049583016051200, i128 18049583016051201, i128 18049651601047552, i128 18049651601047553, i128 18049651601048064, i128 18049651601048065, i128 18049651601309696, i128 18049651601309697, i128 18049651601310208, i128 18049651601310209, i128 18049651735265280, i128 18049651735265281, i128 18049651735265792, i128 18049651735265793, i128 18049651735527424, i128 18049651735527425, i128 18049651735527936, i128 18049651735527937, i128 9223372036854775808, i128 9223372036854775809, i128 9223372036854776320, i128 9223372036854776321, i128 9223372036855037952, i128 9223372036855037953, i128 9223372036855038464, i128 9223372036855038465, i128 9223372036988993536, i128 9223372036988993537, i128 9223372036988994048, i128 9223372036988994049, i128 9223372036989255680, i128 9223372036989255681, i128 9223372036989256192, i128 9223372036989256193, i128 9223372105574252544, i128 9223372105574252545, i128 9223372105574253056, i128 9223372105574253057, i128 9223372105574514688, i128 9223372105574514689, i128 9223372105574515200, i128 9223372105574515201, i128 9223372105708470272, i128 9223372105708470273, i128 9223372105708470784, i128 9223372105708470785, i128 9223372105708732416, i128 9223372105708732417, i128 9223372105708732928, i128 9223372105708732929, i128 9223407221226864640, i128 9223407221226864641, i128 9223407221226865152, i128 9223407221226865153, i128 9223407221227126784, i128 9223407221227126785, i128 9223407221227127296, i128 9223407221227127297, i128 9223407221361082368, i128 9223407221361082369, i128 9223407221361082880, i128 9223407221361082881, i128 9223407221361344512, i128 9223407221361344513, i128 9223407221361345024, i128 9223407221361345025, i128 9223407289946341376, i128 9223407289946341377, i128 9223407289946341888, i128 9223407289946341889, i128 9223407289946603520, i128 9223407289946603521, i128 9223407289946604032, i128 9223407289946604033, i128 9223407290080559104, i128 9223407290080559105, i128 9223407290080559616, i128 9223407290080559617, i128 9223407290080821248, i128 9223407290080821249, i128 9223407290080821760, i128 9223407290080821761, i128 9241386435364257792, i128 9241386435364257793, i128 9241386435364258304, i128 9241386435364258305, i128 9241386435364519936, i128 9241386435364519937, i128 9241386435364520448, i128 9241386435364520449, i128 9241386435498475520, i128 9241386435498475521, i128 9241386435498476032, i128 9241386435498476033, i128 9241386435498737664, i128 9241386435498737665, i128 9241386435498738176, i128 9241386435498738177, i128 9241386504083734528, i128 9241386504083734529, i128 9241386504083735040, i128 9241386504083735041, i128 9241386504083996672, i128 9241386504083996673, i128 9241386504083997184, i128 9241386504083997185, i128 9241386504217952256, i128 9241386504217952257, i128 9241386504217952768, i128 9241386504217952769, i128 9241386504218214400, i128 9241386504218214401, i128 9241386504218214912, i128 9241386504218214913, i128 9241421619736346624, i128 9241421619736346625, i128 9241421619736347136, i128 9241421619736347137, i128 9241421619736608768, i128 9241421619736608769, i128 9241421619736609280, i128 9241421619736609281, i128 9241421619870564352, i128 9241421619870564353, i128 9241421619870564864, i128 9241421619870564865, i128 9241421619870826496, i128 9241421619870826497, i128 9241421619870827008, i128 9241421619870827009, i128 9241421688455823360, i128 9241421688455823361, i128 9241421688455823872, i128 9241421688455823873, i128 9241421688456085504, i128 9241421688456085505, i128 9241421688456086016, i128 9241421688456086017, i128 9241421688590041088, i128 9241421688590041089, i128 9241421688590041600, i128 9241421688590041601, i128 9241421688590303232, i128 9241421688590303233, i128 9241421688590303744, i128 9241421688590303745, i128 4722366482869645213696, i128 4722366482869645213697, i128 4722366482869645214208, i128 4722366482869645214209, i128 4722366482869645475840, i128 4722366482869645475841, i128 4722366482869645476352, i128 4722366482869645476353, i128 4722366482869779431424, i128 4722366482869779431425, i128 4722366482869779431936, i128 4722366482869779431937, i128 4722366482869779693568, i128 4722366482869779693569, i128 4722366482869779694080, i128 4722366482869779694081, i128 4722366482938364690432, i128 4722366482938364690433, i128 4722366482938364690944, i128 4722366482938364690945, i128 4722366482938364952576, i128 4722366482938364952577, i128 4722366482938364953088, i128 4722366482938364953089, i128 4722366482938498908160, i128 4722366482938498908161, i128 4722366482938498908672, i128 4722366482938498908673, i128 4722366482938499170304, i128 4722366482938499170305, i128 4722366482938499170816, i128 4722366482938499170817, i128 4722366518054017302528, i128 4722366518054017302529, i128 4722366518054017303040, i128 4722366518054017303041, i128 4722366518054017564672, i128 4722366518054017564673, i128 4722366518054017565184, i128 4722366518054017565185, i128 4722366518054151520256, i128 4722366518054151520257, i128 4722366518054151520768, i128 4722366518054151520769, i128 4722366518054151782400, i128 4722366518054151782401, i128 4722366518054151782912, i128 4722366518054151782913, i128 4722366518122736779264, i128 4722366518122736779265, i128 4722366518122736779776, i128 4722366518122736779777, i128 4722366518122737041408, i128 4722366518122737041409, i128 4722366518122737041920, i128 4722366518122737041921, i128 4722366518122870996992, i128 4722366518122870996993, i128 4722366518122870997504, i128 4722366518122870997505, i128 4722366518122871259136, i128 4722366518122871259137, i128 4722366518122871259648, i128 4722366518122871259649, i128 4722384497268154695680, i128 4722384497268154695681, i128 4722384497268154696192, i128 4722384497268154696193, i128 4722384497268154957824, i128 4722384497268154957825, i128 4722384497268154958336, i128 4722384497268154958337, i128 4722384497268288913408, i128 4722384497268288913409, i128 4722384497268288913920, i128 4722384497268288913921, i128 4722384497268289175552, i128 4722384497268289175553, i128 4722384497268289176064, i128 4722384497268289176065, i128 4722384497336874172416, i128 4722384497336874172417, i128 4722384497336874172928, i128 4722384497336874172929, i128 4722384497336874434560, i128 4722384497336874434561, i128 4722384497336874435072, i128 4722384497336874435073, i128 4722384497337008390144, i128 4722384497337008390145, i128 4722384497337008390656, i128 4722384497337008390657, i128 4722384497337008652288, i128 4722384497337008652289, i128 4722384497337008652800, i128 4722384497337008652801, i128 4722384532452526784512, i128 4722384532452526784513, i128 4722384532452526785024, i128 4722384532452526785025, i128 4722384532452527046656, i128 4722384532452527046657, i128 4722384532452527047168, i128 4722384532452527047169, i128 4722384532452661002240, i128 4722384532452661002241, i128 4722384532452661002752, i128 4722384532452661002753, i128 4722384532452661264384, i128 4722384532452661264385, i128 4722384532452661264896, i128 4722384532452661264897, i128 4722384532521246261248, i128 4722384532521246261249, i128 4722384532521246261760, i128 4722384532521246261761, i128 4722384532521246523392, i128 4722384532521246523393, i128 4722384532521246523904, i128 4722384532521246523905, i128 4722384532521380478976, i128 4722384532521380478977, i128 4722384532521380479488, i128 4722384532521380479489, i128 4722384532521380741120, i128 4722384532521380741121, i128 4722384532521380741632, i128 4722384532521380741633, i128 4731589854906499989504, i128 4731589854906499989505, i128 4731589854906499990016, i128 4731589854906499990017, i128 4731589854906500251648, i128 4731589854906500251649, i128 4731589854906500252160, i128 4731589854906500252161, i128 4731589854906634207232, i128 4731589854906634207233, i128 4731589854906634207744, i128 4731589854906634207745, i128 4731589854906634469376, i128 4731589854906634469377, i128 4731589854906634469888, i128 4731589854906634469889, i128 4731589854975219466240, i128 4731589854975219466241, i128 4731589854975219466752, i128 4731589854975219466753, i128 4731589854975219728384, i128 4731589854975219728385, i128 4731589854975219728896, i128 4731589854975219728897, i128 4731589854975353683968, i128 4731589854975353683969, i128 4731589854975353684480, i128 4731589854975353684481, i128 4731589854975353946112, i128 4731589854975353946113, i128 4731589854975353946624, i128 4731589854975353946625, i128 4731589890090872078336, i128 4731589890090872078337, i128 4731589890090872078848, i128 4731589890090872078849, i128 4731589890090872340480, i128 4731589890090872340481, i128 4731589890090872340992, i128 4731589890090872340993, i128 4731589890091006296064, i128 4731589890091006296065, i128 4731589890091006296576, i128 4731589890091006296577, i128 4731589890091006558208, i128 4731589890091006558209, i128 4731589890091006558720, i128 4731589890091006558721, i128 4731589890159591555072, i128 4731589890159591555073, i128 4731589890159591555584, i128 4731589890159591555585, i128 4731589890159591817216, i128 4731589890159591817217, i128 4731589890159591817728, i128 4731589890159591817729, i128 4731589890159725772800, i128 4731589890159725772801, i128 4731589890159725773312, i128 4731589890159725773313, i128 4731589890159726034944, i128 4731589890159726034945, i128 4731589890159726035456, i128 4731589890159726035457, i128 4731607869305009471488, i128 4731607869305009471489, i128 4731607869305009472000, i128 4731607869305009472001, i128 4731607869305009733632, i128 4731607869305009733633, i128 4731607869305009734144, i128 4731607869305009734145, i128 4731607869305143689216, i128 4731607869305143689217, i128 4731607869305143689728, i128 4731607869305143689729, i128 4731607869305143951360, i128 4731607869305143951361, i128 4731607869305143951872, i128 4731607869305143951873, i128 4731607869373728948224, i128 4731607869373728948225, i128 4731607869373728948736, i128 4731607869373728948737, i128 4731607869373729210368, i128 4731607869373729210369, i128 4731607869373729210880, i128 4731607869373729210881, i128 4731607869373863165952, i128 4731607869373863165953, i128 4731607869373863166464, i128 4731607869373863166465, i128 4731607869373863428096, i128 4731607869373863428097, i128 4731607869373863428608, i128 4731607869373863428609, i128 4731607904489381560320, i128 4731607904489381560321, i128 4731607904489381560832, i128 4731607904489381560833, i128 4731607904489381822464, i128 4731607904489381822465, i128 4731607904489381822976, i128 4731607904489381822977, i128 4731607904489515778048, i128 4731607904489515778049, i128 4731607904489515778560, i128 4731607904489515778561, i128 4731607904489516040192, i128 4731607904489516040193, i128 4731607904489516040704, i128 4731607904489516040705, i128 4731607904558101037056, i128 4731607904558101037057, i128 4731607904558101037568, i128 4731607904558101037569, i128 4731607904558101299200, i128 4731607904558101299201, i128 4731607904558101299712, i128 4731607904558101299713, i128 4731607904558235254784, i128 4731607904558235254785, i128 4731607904558235255296, i128 4731607904558235255297, i128 4731607904558235516928, i128 4731607904558235516929, i128 4731607904558235517440, i128 4731607904558235517441, i128 2417851639229258349412352, i128 2417851639229258349412353, i128 2417851639229258349412864, i128 2417851639229258349412865, i128 2417851639229258349674496, i128 2417851639229258349674497, i128 2417851639229258349675008, i128 2417851639229258349675009, i128 2417851639229258483630080, i128 2417851639229258483630081, i128 2417851639229258483630592, i128 2417851639229258483630593, i128 2417851639229258483892224, i128 2417851639229258483892225, i128 2417851639229258483892736, i128 2417851639229258483892737, i128 2417851639229327068889088, i128 2417851639229327068889089, i128 2417851639229327068889600, i128 2417851639229327068889601, i128 2417851639229327069151232, i128 2417851639229327069151233, i128 2417851639229327069151744, i128 2417851639229327069151745, i128 2417851639229327203106816, i128 2417851639229327203106817, i128 2417851639229327203107328, i128 2417851639229327203107329, i128 2417851639229327203368960, i128 2417851639229327203368961, i128 2417851639229327203369472, i128 2417851639229327203369473, i128 2417851639264442721501184, i128 2417851639264442721501185, i128 2417851639264442721501696, i128 2417851639264442721501697, i128 2417851639264442721763328, i128 2417851639264442721763329, i128 2417851639264442721763840, i128 2417851639264442721763841, i128 2417851639264442855718912, i128 2417851639264442855718913, i128 2417851639264442855719424, i128 2417851639264442855719425, i128 2417851639264442855981056, i128 2417851639264442855981057, i128 2417851639264442855981568, i128 2417851639264442855981569, i128 2417851639264511440977920, i128 2417851639264511440977921, i128 2417851639264511440978432, i128 2417851639264511440978433, i128 2417851639264511441240064, i128 2417851639264511441240065, i128 2417851639264511441240576, i128 2417851639264511441240577, i128 2417851639264511575195648, i128 2417851639264511575195649, i128 2417851639264511575196160, i128 2417851639264511575196161, i128 2417851639264511575457792, i128 2417851639264511575457793, i128 2417851639264511575458304, i128 2417851639264511575458305, i128 2417851657243656858894336, i128 2417851657243656858894337, i128 2417851657243656858894848, i128 2417851657243656858894849, i128 2417851657243656859156480, i128 2417851657243656859156481, i128 2417851657243656859156992, i128 2417851657243656859156993, i128 2417851657243656993112064, i128 2417851657243656993112065, i128 2417851657243656993112576, i128 2417851657243656993112577, i128 2417851657243656993374208, i128 2417851657243656993374209, i128 2417851657243656993374720, i128 2417851657243656993374721, i128 2417851657243725578371072, i128 2417851657243725578371073, i128 2417851657243725578371584, i128 2417851657243725578371585, i128 2417851657243725578633216, i128 2417851657243725578633217, i128 2417851657243725578633728, i128 2417851657243725578633729, i128 2417851657243725712588800, i128 2417851657243725712588801, i128 2417851657243725712589312, i128 2417851657243725712589313, i128 2417851657243725712850944, i128 2417851657243725712850945, i128 2417851657243725712851456, i128 2417851657243725712851457, i128 2417851657278841230983168, i128 2417851657278841230983169, i128 2417851657278841230983680, i128 2417851657278841230983681, i128 2417851657278841231245312, i128 2417851657278841231245313, i128 2417851657278841231245824, i128 2417851657278841231245825, i128 2417851657278841365200896, i128 2417851657278841365200897, i128 2417851657278841365201408, i128 2417851657278841365201409, i128 2417851657278841365463040, i128 2417851657278841365463041, i128 2417851657278841365463552, i128 2417851657278841365463553, i128 2417851657278909950459904, i128 2417851657278909950459905, i128 2417851657278909950460416, i128 2417851657278909950460417, i128 2417851657278909950722048, i128 2417851657278909950722049, i128 2417851657278909950722560, i128 2417851657278909950722561, i128 2417851657278910084677632, i128 2417851657278910084677633, i128 2417851657278910084678144, i128 2417851657278910084678145, i128 2417851657278910084939776, i128 2417851657278910084939777, i128 2417851657278910084940288, i128 2417851657278910084940289, i128 2417860862601295204188160, i128 2417860862601295204188161, i128 2417860862601295204188672, i128 2417860862601295204188673, i128 2417860862601295204450304, i128 2417860862601295204450305, i128 2417860862601295204450816, i128 2417860862601295204450817, i128 2417860862601295338405888, i128 2417860862601295338405889, i128 2417860862601295338406400, i128 2417860862601295338406401, i128 2417860862601295338668032, i128 2417860862601295338668033, i128 2417860862601295338668544, i128 2417860862601295338668545, i128 2417860862601363923664896, i128 2417860862601363923664897, i128 2417860862601363923665408, i128 2417860862601363923665409, i128 2417860862601363923927040, i128 2417860862601363923927041, i128 2417860862601363923927552, i128 2417860862601363923927553, i128 2417860862601364057882624, i128 2417860862601364057882625, i128 2417860862601364057883136, i128 2417860862601364057883137, i128 2417860862601364058144768, i128 2417860862601364058144769, i128 2417860862601364058145280, i128 2417860862601364058145281, i128 2417860862636479576276992, i128 2417860862636479576276993, i128 2417860862636479576277504, i128 2417860862636479576277505, i128 2417860862636479576539136, i128 2417860862636479576539137, i128 2417860862636479576539648, i128 2417860862636479576539649, i128 2417860862636479710494720, i128 2417860862636479710494721, i128 2417860862636479710495232, i128 2417860862636479710495233, i128 2417860862636479710756864, i128 2417860862636479710756865, i128 2417860862636479710757376, i128 2417860862636479710757377, i128 2417860862636548295753728, i128 2417860862636548295753729, i128 2417860862636548295754240, i128 2417860862636548295754241, i128 2417860862636548296015872, i128 2417860862636548296015873, i128 2417860862636548296016384, i128 2417860862636548296016385, i128 2417860862636548429971456, i128 2417860862636548429971457, i128 2417860862636548429971968, i128 2417860862636548429971969, i128 2417860862636548430233600, i128 2417860862636548430233601, i128 2417860862636548430234112, i128 2417860862636548430234113, i128 2417860880615693713670144, i128 2417860880615693713670145, i128 2417860880615693713670656, i128 2417860880615693713670657, i128 2417860880615693713932288, i128 2417860880615693713932289, i128 2417860880615693713932800, i128 2417860880615693713932801, i128 2417860880615693847887872, i128 2417860880615693847887873, i128 2417860880615693847888384, i128 2417860880615693847888385, i128 2417860880615693848150016, i128 2417860880615693848150017, i128 2417860880615693848150528, i128 2417860880615693848150529, i128 2417860880615762433146880, i128 2417860880615762433146881, i128 2417860880615762433147392, i128 2417860880615762433147393, i128 2417860880615762433409024, i128 2417860880615762433409025, i128 2417860880615762433409536, i128 2417860880615762433409537, i128 2417860880615762567364608, i128 2417860880615762567364609, i128 2417860880615762567365120, i128 2417860880615762567365121, i128 2417860880615762567626752, i128 2417860880615762567626753, i128 2417860880615762567627264, i128 2417860880615762567627265, i128 2417860880650878085758976, i128 2417860880650878085758977, i128 2417860880650878085759488, i128 2417860880650878085759489, i128 2417860880650878086021120, i128 2417860880650878086021121, i128 2417860880650878086021632, i128 2417860880650878086021633, i128 2417860880650878219976704, i128 2417860880650878219976705, i128 2417860880650878219977216, i128 2417860880650878219977217, i128 2417860880650878220238848, i128 2417860880650878220238849, i128 2417860880650878220239360, i128 2417860880650878220239361, i128 2417860880650946805235712, i128 2417860880650946805235713, i128 2417860880650946805236224, i128 2417860880650946805236225, i128 2417860880650946805497856, i128 2417860880650946805497857, i128 2417860880650946805498368, i128 2417860880650946805498369, i128 2417860880650946939453440, i128 2417860880650946939453441, i128 2417860880650946939453952, i128 2417860880650946939453953, i128 2417860880650946939715584, i128 2417860880650946939715585, i128 2417860880650946939716096, i128 2417860880650946939716097, i128 2422574005712127994626048, i128 2422574005712127994626049, i128 2422574005712127994626560, i128 2422574005712127994626561, i128 2422574005712127994888192, i128 2422574005712127994888193, i128 2422574005712127994888704, i128 2422574005712127994888705, i128 2422574005712128128843776, i128 2422574005712128128843777, i128 2422574005712128128844288, i128 2422574005712128128844289, i128 2422574005712128129105920, i128 2422574005712128129105921, i128 2422574005712128129106432, i128 2422574005712128129106433, i128 2422574005712196714102784, i128 2422574005712196714102785, i128 2422574005712196714103296, i128 2422574005712196714103297, i128 2422574005712196714364928, i128 2422574005712196714364929, i128 2422574005712196714365440, i128 2422574005712196714365441, i128 2422574005712196848320512, i128 2422574005712196848320513, i128 2422574005712196848321024, i128 2422574005712196848321025, i128 2422574005712196848582656, i128 2422574005712196848582657, i128 2422574005712196848583168, i128 2422574005712196848583169, i128 2422574005747312366714880, i128 2422574005747312366714881, i128 2422574005747312366715392, i128 2422574005747312366715393, i128 2422574005747312366977024, i128 2422574005747312366977025, i128 2422574005747312366977536, i128 2422574005747312366977537, i128 2422574005747312500932608, i128 2422574005747312500932609, i128 2422574005747312500933120, i128 2422574005747312500933121, i128 2422574005747312501194752, i128 2422574005747312501194753, i128 2422574005747312501195264, i128 2422574005747312501195265, i128 2422574005747381086191616, i128 2422574005747381086191617, i128 2422574005747381086192128, i128 2422574005747381086192129, i128 2422574005747381086453760, i128 2422574005747381086453761, i128 2422574005747381086454272, i128 2422574005747381086454273, i128 2422574005747381220409344, i128 2422574005747381220409345, i128 2422574005747381220409856, i128 2422574005747381220409857, i128 2422574005747381220671488, i128 2422574005747381220671489, i128 2422574005747381220672000, i128 2422574005747381220672001, i128 2422574023726526504108032, i128 2422574023726526504108033, i128 2422574023726526504108544, i128 2422574023726526504108545, i128 2422574023726526504370176, i128 2422574023726526504370177, i128 2422574023726526504370688, i128 2422574023726526504370689, i128 2422574023726526638325760, i128 2422574023726526638325761, i128 2422574023726526638326272, i128 2422574023726526638326273, i128 2422574023726526638587904, i128 2422574023726526638587905, i128 2422574023726526638588416, i128 2422574023726526638588417, i128 2422574023726595223584768, i128 2422574023726595223584769, i128 2422574023726595223585280, i128 2422574023726595223585281, i128 2422574023726595223846912, i128 2422574023726595223846913, i128 2422574023726595223847424, i128 2422574023726595223847425, i128 2422574023726595357802496, i128 2422574023726595357802497, i128 2422574023726595357803008, i128 2422574023726595357803009, i128 2422574023726595358064640, i128 2422574023726595358064641, i128 2422574023726595358065152, i128 2422574023726595358065153, i128 2422574023761710876196864, i128 2422574023761710876196865, i128 2422574023761710876197376, i128 2422574023761710876197377, i128 2422574023761710876459008, i128 2422574023761710876459009, i128 2422574023761710876459520, i128 2422574023761710876459521, i128 2422574023761711010414592, i128 2422574023761711010414593, i128 2422574023761711010415104, i128 2422574023761711010415105, i128 2422574023761711010676736, i128 2422574023761711010676737, i128 2422574023761711010677248, i128 2422574023761711010677249, i128 2422574023761779595673600, i128 2422574023761779595673601, i128 2422574023761779595674112, i128 2422574023761779595674113, i128 2422574023761779595935744, i128 2422574023761779595935745, i128 2422574023761779595936256, i128 2422574023761779595936257, i128 2422574023761779729891328, i128 2422574023761779729891329, i128 2422574023761779729891840, i128 2422574023761779729891841, i128 2422574023761779730153472, i128 2422574023761779730153473, i128 2422574023761779730153984, i128 2422574023761779730153985, i128 2422583229084164849401856, i128 2422583229084164849401857, i128 2422583229084164849402368, i128 2422583229084164849402369, i128 2422583229084164849664000, i128 2422583229084164849664001, i128 2422583229084164849664512, i128 2422583229084164849664513, i128 2422583229084164983619584, i128 2422583229084164983619585, i128 2422583229084164983620096, i128 2422583229084164983620097, i128 2422583229084164983881728, i128 2422583229084164983881729, i128 2422583229084164983882240, i128 2422583229084164983882241, i128 2422583229084233568878592, i128 2422583229084233568878593, i128 2422583229084233568879104, i128 2422583229084233568879105, i128 2422583229084233569140736, i128 2422583229084233569140737, i128 2422583229084233569141248, i128 2422583229084233569141249, i128 2422583229084233703096320, i128 2422583229084233703096321, i128 2422583229084233703096832, i128 2422583229084233703096833, i128 2422583229084233703358464, i128 2422583229084233703358465, i128 2422583229084233703358976, i128 2422583229084233703358977, i128 2422583229119349221490688, i128 2422583229119349221490689, i128 2422583229119349221491200, i128 2422583229119349221491201, i128 2422583229119349221752832, i128 2422583229119349221752833, i128 2422583229119349221753344, i128 2422583229119349221753345, i128 2422583229119349355708416, i128 2422583229119349355708417, i128 2422583229119349355708928, i128 2422583229119349355708929, i128 2422583229119349355970560, i128 2422583229119349355970561, i128 2422583229119349355971072, i128 2422583229119349355971073, i128 2422583229119417940967424, i128 2422583229119417940967425, i128 2422583229119417940967936, i128 2422583229119417940967937, i128 2422583229119417941229568, i128 2422583229119417941229569, i128 2422583229119417941230080, i128 2422583229119417941230081, i128 2422583229119418075185152, i128 2422583229119418075185153, i128 2422583229119418075185664, i128 2422583229119418075185665, i128 2422583229119418075447296, i128 2422583229119418075447297, i128 2422583229119418075447808, i128 2422583229119418075447809, i128 2422583247098563358883840, i128 2422583247098563358883841, i128 2422583247098563358884352, i128 2422583247098563358884353, i128 2422583247098563359145984, i128 2422583247098563359145985, i128 2422583247098563359146496, i128 2422583247098563359146497, i128 2422583247098563493101568, i128 2422583247098563493101569, i128 2422583247098563493102080, i128 2422583247098563493102081, i128 2422583247098563493363712, i128 2422583247098563493363713, i128 2422583247098563493364224, i128 2422583247098563493364225, i128 2422583247098632078360576, i128 2422583247098632078360577, i128 2422583247098632078361088, i128 2422583247098632078361089, i128 2422583247098632078622720, i128 2422583247098632078622721, i128 2422583247098632078623232, i128 2422583247098632078623233, i128 2422583247098632212578304, i128 2422583247098632212578305, i128 2422583247098632212578816, i128 2422583247098632212578817, i128 2422583247098632212840448, i128 2422583247098632212840449, i128 2422583247098632212840960, i128 2422583247098632212840961, i128 2422583247133747730972672, i128 2422583247133747730972673, i128 2422583247133747730973184, i128 2422583247133747730973185, i128 2422583247133747731234816, i128 2422583247133747731234817, i128 2422583247133747731235328, i128 2422583247133747731235329, i128 2422583247133747865190400, i128 2422583247133747865190401, i128 2422583247133747865190912, i128 2422583247133747865190913, i128 2422583247133747865452544, i128 2422583247133747865452545, i128 2422583247133747865453056, i128 2422583247133747865453057, i128 2422583247133816450449408, i128 2422583247133816450449409, i128 2422583247133816450449920, i128 2422583247133816450449921, i128 2422583247133816450711552, i128 2422583247133816450711553, i128 2422583247133816450712064, i128 2422583247133816450712065, i128 2422583247133816584667136, i128 2422583247133816584667137, i128 2422583247133816584667648, i128 2422583247133816584667649, i128 2422583247133816584929280, i128 2422583247133816584929281, i128 2422583247133816584929792, i128 2422583247133816584929793]
declare <16 x i1> @"llvm.x86.avx512.mask.cmp.ps.512"(<16 x float> %".1", <16 x float> %".2", i32 %".3", <16 x i1> %".4", i32 %".5")

declare <16 x float> @"llvm.sqrt.v16f32"(<16 x float> %".1")

declare i1 @"llvm.vector.reduce.or.v16i1"(<16 x i1> %".1")

declare i1 @"llvm.vector.reduce.or.v8i1"(<8 x i1> %".1")

declare <64 x i8> @"llvm.x86.avx512.pmultishift.qb.512"(<64 x i8> %".1", <64 x i8> %".2")

declare <16 x i32> @"llvm.x86.avx512.vpdpbusd.512"(<16 x i32> %".1", <16 x i32> %".2", <16 x i32> %".3")

!0 = !{ !"branch_weights", i32 1048576, i32 1 }
!1 = !{ !"branch_weights", i32 1, i32 1048576 }